"""The FoneStorm client against the real sandbox on a real port, and the sandbox's callbacks.

No mocks: the sandbox, a callback catcher and a canned-answer server are real aiohttp servers
on 127.0.0.1 (see :mod:`tests.support.sandbox`; the ``sandbox`` and ``http`` fixtures are from
there and :mod:`tests.support.bridge_app`).
"""

import asyncio
import base64
import json
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pydantic import SecretStr

from bridge.errors import (
    FoneStormAuthError,
    FoneStormForbidden,
    FoneStormRateLimited,
    FoneStormRejected,
    FoneStormUnavailable,
)
from bridge.fonestorm.templates import build_get_template
from bridge.sandbox.app import run_sandbox
from bridge.sandbox.settings import SandboxSettings
from tests.support.sandbox import (
    CALLEE,
    OURS,
    TOKEN,
    Sandbox,
    admin,
    expected_fields,
    finished,
    make_client,
    running_canned,
    running_catcher,
    running_sandbox,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def client(http, sandbox: Sandbox):
    return make_client(http, f"{sandbox.url}/v2")


@pytest.fixture
async def catcher():
    async with running_catcher() as catcher:
        yield catcher


@pytest.fixture
async def canned():
    async with running_canned() as canned:
        yield canned


# --- create call and error mapping ---------------------------------------------------------


async def test_create_call_is_recorded_with_idempotency_key(client, http, sandbox):
    call = await client.create_call(OURS, CALLEE, "Hello Jane", idempotency_key="cmd-1")
    plain = await client.create_call(OURS, CALLEE)
    status, calls = await admin(http, sandbox, "GET", "/_sandbox/calls")
    assert status == 200
    assert [(c["id"], c["idempotency_key"]) for c in calls] == [
        (call.id, "cmd-1"),
        (plain.id, None),
    ]
    first = calls[0]
    shown = [first[k] for k in ("direction", "fonenumber", "from", "to", "tts")]
    assert shown == ["OUTBOUND", OURS, OURS, CALLEE, "Hello Jane"]
    assert first["outcome"]["disposition"] == "ANSWERED"
    _, filtered = await admin(http, sandbox, "GET", "/_sandbox/calls?idempotency_key=cmd-1")
    assert [c["id"] for c in filtered] == [call.id]


async def test_wrong_token_is_auth_error_and_creates_nothing(http, sandbox):
    client = make_client(http, f"{sandbox.url}/v2", token="not-the-token")
    with pytest.raises(FoneStormAuthError) as info:
        await client.create_call(OURS, CALLEE)
    assert info.value.status == 401
    assert not info.value.retriable
    assert "not-the-token" not in str(info.value)
    assert sandbox.state.calls == {}


async def test_missing_token_fails_without_a_request(http, sandbox):
    with pytest.raises(FoneStormAuthError):
        await make_client(http, f"{sandbox.url}/v2", token=None).create_call(OURS, CALLEE)
    assert not sandbox.state.requests


async def test_injected_500_is_unavailable_and_creates_nothing(client, http, sandbox):
    await admin(http, sandbox, "POST", "/_sandbox/faults", {"fail_next": 1, "fail_status": 502})
    with pytest.raises(FoneStormUnavailable) as info:
        await client.create_call(OURS, CALLEE, idempotency_key="k")
    assert info.value.status == 502
    assert info.value.retriable
    assert "502" in str(info.value)
    assert sandbox.state.calls == {}
    await client.create_call(OURS, CALLEE, idempotency_key="k")
    _, requests = await admin(http, sandbox, "GET", "/_sandbox/requests")
    assert [(r["status"], r["fault"]) for r in requests] == [(502, "fail"), (200, None)]


async def test_fail_after_create_is_ambiguous(client, http, sandbox):
    await admin(http, sandbox, "POST", "/_sandbox/faults", {"fail_after_create_next": 1})
    with pytest.raises(FoneStormUnavailable) as info:
        await client.create_call(OURS, CALLEE, idempotency_key="cmd-7")
    assert info.value.status == 500
    _, calls = await admin(http, sandbox, "GET", "/_sandbox/calls?idempotency_key=cmd-7")
    assert len(calls) == 1


async def test_a_2xx_whose_body_breaks_off_is_a_bad_response(client, http, sandbox):
    # The call exists: a "connection_error" would let the worker retry it and ring twice.
    await admin(http, sandbox, "POST", "/_sandbox/faults", {"break_body_after_create_next": 1})
    with pytest.raises(FoneStormRejected) as info:
        await client.create_call(OURS, CALLEE, idempotency_key="cmd-8")
    error = info.value
    assert (error.code, error.status, error.retriable) == ("bad_response", 200, False)
    _, calls = await admin(http, sandbox, "GET", "/_sandbox/calls?idempotency_key=cmd-8")
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(2, 2.0), ("7", 7.0), (None, None), ("http-date", 60.0)],
)
async def test_rate_limited_carries_retry_after(client, http, sandbox, retry_after, expected):
    if retry_after == "http-date":
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    faults = {"rate_limit_next": 1, "retry_after": retry_after}
    await admin(http, sandbox, "POST", "/_sandbox/faults", faults)
    with pytest.raises(FoneStormRateLimited) as info:
        await client.create_call(OURS, CALLEE)
    assert info.value.status == 429
    assert info.value.retriable
    if expected is None:
        assert info.value.retry_after is None
    else:
        assert info.value.retry_after == pytest.approx(expected, abs=2)
    assert sandbox.state.calls == {}


async def test_hanging_request_times_out_within_read_timeout(http, sandbox):
    client = make_client(http, f"{sandbox.url}/v2", read_timeout=0.3)
    await admin(
        http, sandbox, "POST", "/_sandbox/faults", {"timeout_next": 1, "timeout_seconds": 30}
    )
    with pytest.raises(FoneStormUnavailable) as info:
        await client.create_call(OURS, CALLEE)
    # The client's own timeout, not the sandbox's 504 after its 30 s hang.
    assert info.value.status is None
    assert info.value.code == "timeout"
    assert info.value.retriable
    assert sandbox.state.calls == {}


async def test_connection_refused_is_unavailable(http):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FoneStormUnavailable) as info:
        await make_client(http, f"http://127.0.0.1:{port}/v2").create_call(OURS, CALLEE)
    assert info.value.status is None
    assert info.value.code == "connect_failed"


async def test_invalid_destination_is_rejected(client, sandbox):
    with pytest.raises(FoneStormRejected) as info:
        await client.create_call(OURS, "3215550009")
    assert info.value.status == 422
    assert not info.value.retriable
    assert "invalid_destination" in str(info.value)
    assert sandbox.state.calls == {}


async def test_latency_and_error_rate_from_settings(http):
    async with running_sandbox(latency=0.2, error_rate=1.0) as sandbox:
        client = make_client(http, f"{sandbox.url}/v2")
        started = time.monotonic()
        with pytest.raises(FoneStormUnavailable):
            await client.create_call(OURS, CALLEE)
        assert time.monotonic() - started >= 0.2
        faults = {"error_rate": 0, "latency": 0}
        assert (await admin(http, sandbox, "POST", "/_sandbox/faults", faults))[0] == 200
        await client.create_call(OURS, CALLEE)
        _, faults = await admin(http, sandbox, "DELETE", "/_sandbox/faults")
        assert faults["error_rate"] == 1.0  # back to the configured baseline


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (200, "<html>ok</html>", FoneStormRejected, "bad_response"),
        (200, '{"call": {}}', FoneStormRejected, "bad_response"),
        (201, '{"call": {"id": ""}}', FoneStormRejected, "bad_response"),
        (302, "moved", FoneStormRejected, "fonestorm_rejected"),
        (401, "who are you", FoneStormAuthError, "fonestorm_auth"),
        (403, "forbidden", FoneStormForbidden, "fonestorm_forbidden"),
        (404, "no such route", FoneStormRejected, "fonestorm_rejected"),
        (503, f"upstream said token={TOKEN}", FoneStormUnavailable, "server_error"),
    ],
)
async def test_misbehaving_server(http, canned, status, body, error, code):
    url, set_answer = canned
    set_answer(status, body)
    with pytest.raises(error) as info:
        await make_client(http, url).create_call(OURS, CALLEE)
    assert info.value.code == code
    assert info.value.status == status
    assert TOKEN not in str(info.value)


async def test_registration_accepts_fonenumber_shape(http, canned):
    url, set_answer = canned
    client = make_client(http, url)
    set_answer(200, '{"fonenumber": {"url": "https://x.example/cb", "method": "POST"}}')
    got = await client.set_send_notify(OURS, "https://x.example/cb", "POST")
    assert (got.url, got.method) == ("https://x.example/cb", "POST")
    set_answer(200, '{"fonenumber": {"fonenumber": "3215551081"}}')
    got = await client.set_receive_notify(OURS, "https://y.example/cb", "JSON")
    assert (got.url, got.method) == ("https://y.example/cb", "JSON")
    set_answer(200, '{"something": "else"}')
    with pytest.raises(FoneStormRejected):
        await client.set_receive_notify(OURS, "https://y.example/cb", "JSON")


# --- registrations and callbacks -----------------------------------------------------------


async def test_registration_round_trip(client, http, sandbox):
    sent = await client.set_send_notify(
        OURS, "https://bridge.example/cb", "JSON", "fonestorm", SecretStr("pw")
    )
    received = await client.set_receive_notify(OURS, "http://bridge.example/in", "POST")
    assert (sent.url, sent.method) == ("https://bridge.example/cb", "JSON")
    assert (received.url, received.method) == ("http://bridge.example/in", "POST")
    _, regs = await admin(http, sandbox, "GET", "/_sandbox/registrations")
    assert regs["send_notify"][OURS]["url_username"] == "fonestorm"
    assert regs["send_notify"][OURS]["url_password"] == "********"
    assert regs["receive_notify"][OURS]["url_password"] is None
    assert sandbox.state.registration("send_notify", "+1" + OURS).password == "pw"


@pytest.mark.parametrize("method", ["GET", "POST", "JSON"])
async def test_callbacks_begin_then_end(client, sandbox, catcher, method):
    url = f"{catcher.url}/cb?src=fs"
    if method == "GET":
        url = build_get_template(url)
    await client.set_send_notify(OURS, url, method, "fonestorm", SecretStr("hunter2"))
    call = await client.create_call(OURS, CALLEE)
    begin, end = await catcher.wait_for(2)
    await finished(sandbox, call.id)
    expected_type = {
        "GET": "application/octet-stream",  # no body, aiohttp's default
        "POST": "application/x-www-form-urlencoded",
        "JSON": "application/json",
    }[method]
    for caught in (begin, end):
        assert caught.method == ("GET" if method == "GET" else "POST")
        assert caught.path == "/cb"
        assert caught.content_type == expected_type
        scheme, _, encoded = caught.headers["Authorization"].partition(" ")
        assert (scheme, base64.b64decode(encoded)) == ("Basic", b"fonestorm:hunter2")
    seconds = "30" if method in ("GET", "POST") else 30
    begin_fields, end_fields = begin.fields(), end.fields()
    if method == "GET":
        assert begin_fields.pop("src") == end_fields.pop("src") == "fs"
        assert "disposition={{disposition}}" in begin.raw_path
        assert begin_fields.pop("disposition") == "{{disposition}}"
        assert begin_fields.pop("billable_seconds") == "{{billable_seconds}}"
    assert begin_fields == expected_fields(call.id, "OUTBOUND", OURS, CALLEE, "BEGIN")
    assert end_fields == expected_fields(
        call.id, "OUTBOUND", OURS, CALLEE, "END", disposition="ANSWERED", billable_seconds=seconds
    )
    record = sandbox.state.calls[call.id]
    assert [(d.status, d.result, len(d.attempts)) for d in record.deliveries] == [
        ("BEGIN", "delivered", 1),
        ("END", "delivered", 1),
    ]


async def test_outcomes_by_number(client, sandbox, catcher):
    await client.set_send_notify(OURS, f"{catcher.url}/cb", "JSON")
    expected = {
        "3215550001": ("NO_ANSWER", 0),
        "3215550002": ("BUSY", 0),
        "3215550003": ("REJECTED", 0),
        "3215550004": ("CANCEL", 0),
        "3215550005": ("FAILED:503", 0),
        "3215550006": ("ANSWERED", 125),
        "+13215551234": ("ANSWERED", 30),
    }
    ids = {to: (await client.create_call(OURS, to)).id for to in expected}
    await asyncio.gather(*(finished(sandbox, i) for i in ids.values()))
    for to, (disposition, seconds) in expected.items():
        end = sandbox.state.calls[ids[to]].deliveries[-1]
        assert (end.status, end.result) == ("END", "delivered")
        assert (end.data["disposition"], end.data["billable_seconds"]) == (disposition, seconds)


async def test_lost_end_callback(client, sandbox, catcher):
    await client.set_send_notify(OURS, f"{catcher.url}/cb", "JSON")
    call = await client.create_call(OURS, "3215550007")
    await finished(sandbox, call.id)
    assert [json.loads(c.body)["status"] for c in catcher.requests] == ["BEGIN"]
    assert [d.result for d in sandbox.state.calls[call.id].deliveries] == ["delivered", "dropped"]


async def test_delivery_retries_on_503_and_stops_on_4xx(client, http, sandbox, catcher):
    await client.set_send_notify(OURS, f"{catcher.url}/cb", "POST")
    catcher.statuses[:] = [503, 503, 200, 401]
    call = await client.create_call(OURS, CALLEE)
    await finished(sandbox, call.id)
    _, record = await admin(http, sandbox, "GET", f"/_sandbox/calls/{call.id}")
    begin, end = record["deliveries"]
    assert [h["response_status"] for h in begin["history"]] == [503, 503, 200]
    assert (begin["result"], begin["attempts"], begin["response_status"]) == ("delivered", 3, 200)
    assert (end["result"], end["attempts"], end["response_status"]) == ("rejected", 1, 401)


async def test_no_registration_still_creates_the_call(client, http, sandbox):
    call = await client.create_call(OURS, CALLEE)
    await finished(sandbox, call.id)
    _, record = await admin(http, sandbox, "GET", f"/_sandbox/calls/{call.id}")
    assert [(d["status"], d["result"]) for d in record["deliveries"]] == [
        ("BEGIN", "no_registration"),
        ("END", "no_registration"),
    ]


async def test_inbound_call_simulation(client, http, sandbox, catcher):
    await client.set_receive_notify(OURS, f"{catcher.url}/in", "JSON", "fs", SecretStr("pw"))
    await client.set_send_notify(OURS, f"{catcher.url}/out", "JSON")
    body = {"from": "4075550123", "to": OURS, "disposition": "BUSY"}
    status, answer = await admin(http, sandbox, "POST", "/_sandbox/inbound", body)
    assert status == 200
    call_id = answer["call"]["id"]
    begin, end = await catcher.wait_for(2)
    assert {begin.path, end.path} == {"/in"}
    fields = ("INBOUND", "4075550123", OURS)
    assert begin.fields() == expected_fields(call_id, *fields, "BEGIN")
    assert end.fields() == expected_fields(
        call_id, *fields, "END", disposition="BUSY", billable_seconds=0
    )
    status, answer = await admin(http, sandbox, "POST", "/_sandbox/inbound", {"to": OURS})
    assert status == 422
    assert answer["error"]["code"] == "invalid_fields"


# --- the sandbox's own HTTP surface --------------------------------------------------------


async def test_api_validation_errors(http, sandbox):
    headers = {"token": TOKEN}

    async def post(path: str, data: bytes) -> tuple[int, dict]:
        async with http.post(f"{sandbox.url}/v2{path}", data=data, headers=headers) as resp:
            return resp.status, await resp.json()

    assert (await post("/calls", b"{nope"))[0] == 400
    status, body = await post("/calls", json.dumps({"fonenumber": OURS}).encode())
    assert (status, body["error"]["code"]) == (422, "invalid_fields")
    assert "to" in body["error"]["message"]
    for bad in (
        {"method": "PUT"},
        {"url": "ftp://x/cb"},
        {"url": "not a url"},
        {"url_username": "a:b"},
        {"fonenumber": "12"},
    ):
        registration = {"fonenumber": OURS, "method": "JSON", "url": "http://x/cb", **bad}
        status, body = await post("/calls/send_notify", json.dumps(registration).encode())
        assert (status, body["error"]["code"]) == (422, "invalid_fields")


async def test_admin_endpoints(http, sandbox, client):
    assert await admin(http, sandbox, "GET", "/healthz") == (200, {"status": "ok"})
    status, body = await admin(http, sandbox, "POST", "/_sandbox/faults", {"bogus": 1})
    assert (status, body["error"]["code"]) == (422, "invalid_fields")
    status, faults = await admin(http, sandbox, "POST", "/_sandbox/faults", {"fail_next": 2})
    assert (status, faults["fail_next"], faults["fail_status"]) == (200, 2, 500)
    assert (await admin(http, sandbox, "GET", "/_sandbox/faults"))[1] == faults
    _, cleared = await admin(http, sandbox, "DELETE", "/_sandbox/faults")
    assert cleared["fail_next"] == 0
    await client.set_send_notify(OURS, "http://127.0.0.1:9/cb", "JSON")
    await client.create_call(OURS, CALLEE)
    assert await admin(http, sandbox, "POST", "/_sandbox/reset") == (200, {"status": "reset"})
    assert (await admin(http, sandbox, "GET", "/_sandbox/calls"))[1] == []
    registrations = (await admin(http, sandbox, "GET", "/_sandbox/registrations"))[1]
    assert registrations == {"send_notify": {}, "receive_notify": {}}
    for method, path, expected in [
        ("GET", "/nowhere", 404),
        ("GET", "/v2/calls", 405),
        ("GET", "/_sandbox/calls/unknown", 404),
    ]:
        status, body = await admin(http, sandbox, method, path)
        assert status == expected
        assert set(body["error"]) == {"code", "message"}


async def test_run_sandbox_serves_until_cancelled(http):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    task = asyncio.create_task(
        run_sandbox(SandboxSettings(host="127.0.0.1", port=port, token=SecretStr(TOKEN)))
    )
    client = make_client(http, f"http://127.0.0.1:{port}/v2")
    async with asyncio.timeout(5):
        while True:
            try:
                await client.create_call(OURS, CALLEE)
                break
            except FoneStormUnavailable:
                await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(FoneStormUnavailable):
        await client.create_call(OURS, CALLEE)
