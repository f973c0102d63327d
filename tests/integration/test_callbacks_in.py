"""Callbacks over real HTTP become events on the real Kafka broker."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bridge.contracts.calls import CallEvent, CallStatus, Direction, call_event_id
from bridge.contracts.dead_letters import DeadLetter
from tests.support.bridge_app import BridgeFactory, RunningBridge
from tests.support.callbacks import callback, get_query
from tests.support.kafka_records import consume_all, consume_for, headers_of

pytestmark = pytest.mark.integration


async def send(
    http: aiohttp.ClientSession,
    bridge: RunningBridge,
    method: str,
    data: dict[str, Any],
    **kwargs: Any,
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    url = bridge.callback_url
    if method == "GET":
        request = http.get(f"{url}?{get_query(data)}", **kwargs)
    elif method == "POST":
        request = http.post(url, data={k: str(v) for k, v in data.items()}, **kwargs)
    else:
        request = http.post(url, json=data, **kwargs)
    async with request as response:
        return response.status, await response.json(), response


@pytest.mark.parametrize("method", ["GET", "POST", "JSON"])
@pytest.mark.parametrize("direction", ["INBOUND", "OUTBOUND"])
@pytest.mark.parametrize("status", ["BEGIN", "END"])
async def test_callback_becomes_event(
    start_bridge: BridgeFactory,
    http: aiohttp.ClientSession,
    method: str,
    direction: str,
    status: str,
) -> None:
    bridge = await start_bridge()
    data = callback(direction, status)
    before = datetime.now(UTC)
    code, body, _ = await send(http, bridge, method, data)
    assert code == 200, body
    event_id = call_event_id(data["uid"], *_enums(direction, status))
    assert body == {"event_id": event_id, "call_id": data["uid"]}

    [record] = await consume_all(
        bridge.settings.kafka.bootstrap_servers, bridge.settings.topics.call_events, expected=1
    )
    assert record.key == data["uid"].encode()
    value = json.loads(record.value)
    received_at = datetime.fromisoformat(value.pop("received_at"))
    assert before - timedelta(seconds=1) <= received_at <= datetime.now(UTC)
    ours = data["from"] if direction == "OUTBOUND" else data["to"]
    end = status == "END"
    assert value == {
        "event_id": event_id,
        "call_id": data["uid"],
        "account_code": data["account_code"],
        "direction": direction,
        "status": status,
        "call_type": "VOICE",
        "from_number": "3215551081",
        "from_e164": "+13215551081",
        "to_number": "3215551801",
        "to_e164": "+13215551801",
        "fonenumber": ours,
        "fonenumber_e164": "+1" + ours,
        "disposition": "ANSWERED" if end else None,
        "failure_code": None,
        "billable_seconds": data["billable_seconds"] if end else None,
        "command_id": None,
        "correlation_id": None,
    }
    headers = headers_of(record)
    ce_time = datetime.fromisoformat(headers.pop("ce_time"))
    assert ce_time == received_at
    assert headers == {
        "ce_specversion": "1.0",
        "ce_id": event_id,
        "ce_source": "/fonestorm-bridge/callbacks",
        "ce_type": f"com.fonestorm.call.{status.lower()}",
        "ce_subject": data["uid"],
        "ce_dataschema": CallEvent.schema_id(),
        "content-type": "application/json",
    }
    CallEvent.model_validate_json(record.value)


def _enums(direction: str, status: str) -> tuple[Direction, CallStatus]:
    return Direction(direction), CallStatus(status)


async def test_get_with_empty_and_unreplaced_tokens(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    bridge = await start_bridge()
    uid = str(uuid.uuid1())
    query = (
        f"uid={uid}&account_code=A&direction=INBOUND&status=BEGIN&from=&to=3215551801"
        "&type=VOICE&disposition={{disposition}}&billable_seconds="
    )
    async with http.get(f"{bridge.callback_url}?{query}") as response:
        assert response.status == 422
        assert "from: Field required" in (await response.json())["error"]["message"]
    query = query.replace("from=&", "from=3215559999&")
    async with http.get(f"{bridge.callback_url}?{query}") as response:
        assert response.status == 200
    records = await consume_all(
        bridge.settings.kafka.bootstrap_servers, bridge.settings.topics.call_events, expected=1
    )
    value = json.loads(records[0].value)
    assert value["disposition"] is None
    assert value["billable_seconds"] is None
    assert value["from_number"] == "3215559999"


async def test_failed_disposition_and_duplicate_delivery(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    bridge = await start_bridge()
    data = callback("OUTBOUND", "END", disposition="FAILED:503", billable_seconds=0)
    first = await send(http, bridge, "JSON", data)
    second = await send(http, bridge, "POST", data)
    assert first[0] == second[0] == 200
    assert first[1]["event_id"] == second[1]["event_id"]
    records = await consume_all(
        bridge.settings.kafka.bootstrap_servers, bridge.settings.topics.call_events, expected=2
    )
    values = [json.loads(r.value) for r in records]
    assert {v["event_id"] for v in values} == {first[1]["event_id"]}
    assert {(v["disposition"], v["failure_code"]) for v in values} == {("FAILED", "503")}
    assert {headers_of(r)["ce_id"] for r in records} == {first[1]["event_id"]}


async def test_json_numbers_in_text_fields_make_an_event(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    bridge = await start_bridge()
    data = callback("INBOUND", "BEGIN", account_code=1001, **{"from": 3215551081, "to": 3215551801})
    code, body, _ = await send(http, bridge, "JSON", data)
    assert code == 200, body
    [record] = await consume_all(
        bridge.settings.kafka.bootstrap_servers, bridge.settings.topics.call_events, expected=1
    )
    event = CallEvent.model_validate_json(record.value)
    assert (event.account_code, event.from_number, event.to_number) == (
        "1001", "3215551081", "3215551801",
    )  # fmt: skip
    assert (event.fonenumber_e164, event.event_id) == ("+13215551801", body["event_id"])


BAD_INPUTS = [
    # (name, request kwargs, expected status, expected code, message fragment)
    ("malformed json", {"data": b'{"uid": ', "ct": "application/json"}, 400, "malformed_body",
     "not valid JSON"),
    ("wrong content type", {"data": b"uid=1", "ct": "text/plain"}, 415, "unsupported_media_type",
     "text/plain"),
    ("missing fields", {"data": b'{"uid": "u1"}', "ct": "application/json"}, 422,
     "invalid_fields", "account_code: Field required"),
    ("invalid field", {"data": None, "json_extra": {"billable_seconds": "many"}}, 422,
     "invalid_fields", "billable_seconds"),
    ("unknown enum", {"data": None, "json_extra": {"direction": "SIDEWAYS"}}, 422,
     "invalid_fields", "direction"),
    ("unknown disposition", {"data": None, "json_extra": {"disposition": "HUNG_UP"}}, 422,
     "invalid_fields", "unknown disposition"),
    ("non-utf8 json", {"data": b'{"uid": "\xff\xfe"}', "ct": "application/json"}, 400,
     "malformed_body", "UTF-8"),
    ("non-utf8 form", {"data": b"uid=%ff%fe", "ct": "application/x-www-form-urlencoded"}, 400,
     "malformed_body", "UTF-8"),
    ("oversized", {"data": b"x" * 70_000, "ct": "application/json"}, 413, "payload_too_large",
     "65536"),
    ("json array", {"data": b"[]", "ct": "application/json; charset=utf-8"}, 422,
     "invalid_fields", "object"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "spec", "status", "code", "fragment"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
async def test_bad_input_is_rejected_and_dead_lettered(
    start_bridge: BridgeFactory,
    http: aiohttp.ClientSession,
    name: str,
    spec: dict[str, Any],
    status: int,
    code: str,
    fragment: str,
) -> None:
    bridge = await start_bridge()
    body = spec["data"]
    content_type = spec.get("ct", "application/json")
    if body is None:
        body = json.dumps(callback("OUTBOUND", "END") | spec["json_extra"]).encode()
    headers = {"Content-Type": content_type, "X-Request-Id": "t1", "X-Custom": "dropped"}
    async with http.post(bridge.callback_url, data=body, headers=headers) as response:
        assert response.status == status
        error = (await response.json())["error"]
    assert error["code"] == code
    assert fragment in error["message"]

    [record] = await consume_all(
        bridge.settings.kafka.bootstrap_servers, bridge.settings.topics.dead_letters, expected=1
    )
    letter = DeadLetter.model_validate_json(record.value)
    assert letter.source == "callback"
    assert (letter.reason_code, letter.reason, letter.http_status) == (
        code, error["message"], status,
    )  # fmt: skip
    assert letter.request is not None
    assert letter.request.method == "POST"
    # Headers are kept by allow-list: what explains the request, never credentials.
    kept_headers = {name.lower(): value for name, value in letter.request.headers.items()}
    assert kept_headers["x-request-id"] == "t1"
    assert "x-custom" not in kept_headers
    kept = (
        letter.request.body.encode()
        if letter.request.body_encoding == "utf-8"
        else base64.b64decode(letter.request.body)
    )
    limit = bridge.settings.http.max_body_bytes
    assert kept == body[:limit]
    assert letter.request.body_truncated == (len(body) > limit)
    assert headers_of(record)["ce_dataschema"] == DeadLetter.schema_id()
    # Nothing reached the events topic, and the server still serves.
    assert (
        await consume_for(
            bridge.settings.kafka.bootstrap_servers, bridge.settings.topics.call_events, seconds=0.5
        )
        == []
    )
    ok, _, _ = await send(http, bridge, "JSON", callback("INBOUND", "BEGIN"))
    assert ok == 200


async def test_non_utf8_query_and_bad_method_are_dead_lettered(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    bridge = await start_bridge()
    async with http.get(f"{bridge.callback_url}?uid=%ff") as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "malformed_body"
    async with http.put(bridge.callback_url, data=b"x") as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "method_not_allowed"
    records = await consume_all(
        bridge.settings.kafka.bootstrap_servers, bridge.settings.topics.dead_letters, expected=2
    )
    letters = [DeadLetter.model_validate_json(r.value) for r in records]
    assert [(x.request.method, x.request.query.lower()) for x in letters if x.request] == [
        ("GET", "uid=%ff"), ("PUT", ""),
    ]  # fmt: skip


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_basic_auth(start_bridge: BridgeFactory, http: aiohttp.ClientSession) -> None:
    bridge = await start_bridge(callbacks={"username": "fone", "password": "st0rm"})
    data = callback("OUTBOUND", "BEGIN")
    for headers in ({}, basic("fone", "wrong"), basic("x", "st0rm"), {"Authorization": "Basic !"}):
        code, body, response = await send(http, bridge, "JSON", data, headers=headers)
        assert code == 401
        assert body["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    servers, topics = bridge.settings.kafka.bootstrap_servers, bridge.settings.topics
    assert await consume_for(servers, topics.call_events, seconds=0.5) == []
    assert await consume_for(servers, topics.dead_letters, seconds=0.2) == []
    code, _, _ = await send(http, bridge, "GET", data, headers=basic("fone", "st0rm"))
    assert code == 200
    assert len(await consume_all(servers, topics.call_events, expected=1)) == 1


async def test_kafka_unreachable_answers_503_and_not_ready(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    # A port nothing listens on: the producer never connects.
    bridge = await start_bridge(
        ready=False, kafka={"bootstrap_servers": "127.0.0.1:1", "produce_timeout": 1.0}
    )
    code, body, response = await send(http, bridge, "JSON", callback("OUTBOUND", "BEGIN"))
    assert code == 503
    assert body["error"]["code"] == "kafka_unavailable"
    # Refused at once, with no producer, not after waiting out the produce timeout.
    assert "not reachable" in body["error"]["message"]
    assert response.headers["Retry-After"] == "1"
    async with http.get(f"{bridge.url}/readyz") as ready:
        assert ready.status == 503
        assert (await ready.json())["checks"]["kafka"] is False
    async with http.get(f"{bridge.url}/healthz") as health:
        assert health.status == 200


async def test_operations_endpoints(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    bridge = await start_bridge()
    await send(http, bridge, "JSON", callback("OUTBOUND", "BEGIN"))
    await send(http, bridge, "JSON", {"uid": "x"})
    async with http.get(f"{bridge.url}/metrics") as response:
        text = await response.text()
    assert 'bridge_callbacks_total{direction="OUTBOUND",method="JSON",outcome="accepted",' in text
    assert 'bridge_dead_letters_total{reason="invalid_fields",source="callback"} 1.0' in text
    assert "bridge_produce_duration_seconds_bucket" in text
    async with http.get(f"{bridge.url}/nope") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    for path in ("/", "/callbacks", "/healthz/more", "/%2e%2e/etc"):
        async with http.request("PUT", f"{bridge.url}{path}") as response:
            assert response.status == 404, path
            assert (await response.json())["error"] == {
                "code": "not_found",
                "message": "404: Not Found",
            }
    async with http.post(f"{bridge.url}/healthz", data=b"x") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET,HEAD"
        assert (await response.json())["error"]["code"] == "method_not_allowed"
