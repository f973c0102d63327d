"""Registry mode against a real schema registry (Apicurio Registry 2.4.2), real Kafka and the
sandbox as FoneStorm: registration at start, refusal on an incompatible schema, records that
carry their schema's ids, framed commands, and a registry that goes away after start."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft7Validator

from bridge.contracts.base import VersionedEvent
from bridge.contracts.calls import CallEvent, CallPlaced
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult
from bridge.contracts.dead_letters import DeadLetter
from bridge.schema_registry import naming
from bridge.schema_registry.client import RegistryUnavailable, SchemaIncompatible
from bridge.schema_registry.wire import CONTENT_ID_HEADER, GLOBAL_ID_HEADER, frame, read_id_header
from tests.support.bridge_app import BridgeFactory, RunningBridge
from tests.support.callbacks import callback, post_json
from tests.support.commands import Loop, closed_loop, command
from tests.support.dead_letters import refused_callback, tool, with_replay_topic, write_dead_letters
from tests.support.kafka_broker import NewTopicFactory
from tests.support.kafka_records import Record, consume_all
from tests.support.ports import free_port
from tests.support.schema_registry import Registry, RegistryFactory, registry_mode

pytestmark = pytest.mark.integration

CE_HEADERS = {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_dataschema"}


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json(content_type=None)


async def test_start_registers_every_schema_under_its_subject(
    start_bridge: BridgeFactory, schema_registry: Registry, http: aiohttp.ClientSession
) -> None:
    bridge = await start_bridge(schemas=registry_mode(schema_registry))
    api = schema_registry.ccompat_url
    subjects = set(await get(http, f"{api}/subjects"))
    for topic, model in naming.published(bridge.settings.topics):
        subject = naming.subject(topic, model)
        assert subject in subjects
        assert (await get(http, f"{api}/config/{subject}"))["compatibilityLevel"] == "BACKWARD"
        latest = await get(http, f"{api}/subjects/{subject}/versions/latest")
        assert latest["version"] == 1
        assert json.loads(latest["schema"]) == json.loads(naming.registry_schema(model))


async def _register_with_a_lost_field(
    http: aiohttp.ClientSession, registry: Registry, subject: str, model: type[VersionedEvent]
) -> None:
    """Register, as an earlier version under ``subject``, ``model``'s schema with one more
    required field: what the current schema would have lost since."""
    older = model.json_schema() | {"$schema": naming.REGISTRY_DIALECT}
    older["properties"] = older["properties"] | {"legacy": {"type": "string"}}
    older["required"] = [*older["required"], "legacy"]
    async with http.post(
        f"{registry.ccompat_url}/subjects/{subject}/versions",
        json={"schemaType": "JSON", "schema": json.dumps(older)},
    ) as response:
        assert response.status == 200, await response.text()


async def test_an_incompatible_schema_refuses_start(
    start_bridge: BridgeFactory, schema_registry: Registry, http: aiohttp.ClientSession
) -> None:
    # What a later bridge would meet had CallEvent lost a required field since this version.
    topic = f"events-{uuid.uuid4().hex[:8]}"
    subject = naming.subject(topic, CallEvent)
    await _register_with_a_lost_field(http, schema_registry, subject, CallEvent)
    with pytest.raises(SchemaIncompatible) as refused:
        await start_bridge(
            schemas=registry_mode(schema_registry), topics={"call_events": topic}, ready=False
        )
    message = str(refused.value)
    assert f"refuses call-event.v1.json under subject {subject}" in message
    assert "not BACKWARD compatible" in message
    assert "not starting" in message
    versions = await get(http, f"{schema_registry.ccompat_url}/subjects/{subject}/versions")
    assert versions == [1]  # nothing was registered


async def test_the_process_refuses_to_start_with_one_line(
    schema_registry: Registry, http: aiohttp.ClientSession
) -> None:
    topic = f"results-{uuid.uuid4().hex[:8]}"
    subject = naming.subject(topic, PlaceCallResult)
    await _register_with_a_lost_field(http, schema_registry, subject, PlaceCallResult)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.cli", "worker",
        env={
            **clean,
            "BRIDGE_SCHEMAS__REGISTRY_URL": schema_registry.ccompat_url,
            "BRIDGE_TOPICS__PLACE_CALL_RESULTS": topic,
            "BRIDGE_HTTP__PORT": str(free_port()),
            "BRIDGE_LOG__FORMAT": "text",
        },
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 1
    text = err.decode()
    assert "Traceback" not in text
    [line] = [row for row in text.splitlines() if row.startswith("fonestorm-bridge: ")]
    assert f"under subject {subject}" in line
    assert "not starting" in line


async def test_an_unreachable_registry_refuses_start_after_its_timeout(
    start_bridge: BridgeFactory,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/apis/ccompat/v7"
    with pytest.raises(RegistryUnavailable) as refused:
        await start_bridge(schemas={"registry_url": nowhere, "start_timeout": 1.0}, ready=False)
    assert "did not answer within 1s (BRIDGE_SCHEMAS__START_TIMEOUT)" in str(refused.value)


def _variant(model: type, change: str) -> dict[str, Any]:
    schema = model.json_schema() | {"$schema": naming.REGISTRY_DIALECT}
    if change == "optional_added":
        schema["properties"] = schema["properties"] | {
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
        }
    elif change == "required_removed":
        gone = schema["required"][-1]
        schema["properties"] = {k: v for k, v in schema["properties"].items() if k != gone}
        schema["required"] = schema["required"][:-1]
    return schema


@pytest.mark.parametrize(
    ("model", "change", "accepted"),
    [
        (CallEvent, "optional_added", True),
        (CallEvent, "required_removed", False),
        (PlaceCallResult, "optional_added", True),
        (PlaceCallResult, "required_removed", False),
        (DeadLetter, "optional_added", True),
        (DeadLetter, "required_removed", False),
    ],
)
async def test_the_registry_agrees_with_the_offline_check(
    schema_registry: Registry, model: type, change: str, accepted: bool
) -> None:
    from bridge.contracts.compat import backward_incompatibilities  # noqa: PLC0415
    from bridge.schema_registry.registration import new_client  # noqa: PLC0415
    from bridge.settings import SchemaSettings  # noqa: PLC0415

    client = new_client(SchemaSettings(registry_url=schema_registry.ccompat_url))
    subject = f"evolution-{uuid.uuid4().hex[:8]}-{naming.record_name(model)}"
    try:
        await client.set_compatibility(subject, "BACKWARD")
        await client.register(subject, naming.registry_schema(model))
        changed = _variant(model, change)
        offline = backward_incompatibilities(model.json_schema(), changed)
        assert (offline == []) is accepted, offline
        if accepted:
            await client.register(subject, json.dumps(changed))
            assert set(await client.ids_of_subject(subject)).__len__() == 2
        else:
            with pytest.raises(SchemaIncompatible, match="Incompatible"):
                await client.register(subject, json.dumps(changed))
            assert len(await client.ids_of_subject(subject)) == 1
    finally:
        await client.close()


async def _check_ids(
    http: aiohttp.ClientSession, registry: Registry, record: Record, subject: str
) -> None:
    """The record is plain-JSON CloudEvents binary mode, and its id headers name its schema."""
    headers = record.headers
    names = {name for name, _ in headers}
    assert names >= CE_HEADERS
    value = json.loads(record.value)  # plain JSON: no magic byte in front
    content_id = read_id_header(headers, CONTENT_ID_HEADER)
    global_id = read_id_header(headers, GLOBAL_ID_HEADER)
    assert content_id is not None
    assert global_id is not None
    by_content = await get(http, f"{registry.ccompat_url}/schemas/ids/{content_id}")
    schema = json.loads(by_content["schema"])
    by_global = await get(http, f"{registry.url}/apis/registry/v2/ids/globalIds/{global_id}")
    assert by_global == schema
    owners = await get(http, f"{registry.ccompat_url}/schemas/ids/{content_id}/versions")
    assert subject in {owner["subject"] for owner in owners}
    assert schema["$id"] == dict(headers)["ce_dataschema"].decode()
    errors = [e.message for e in Draft7Validator(schema).iter_errors(value)]
    assert errors == [], errors


async def test_every_record_carries_its_schema_ids(
    start_bridge: BridgeFactory, schema_registry: Registry, http: aiohttp.ClientSession
) -> None:
    async with closed_loop(start_bridge, schemas=registry_mode(schema_registry)) as loop:
        topics = loop.settings.topics
        cmd = command(str(uuid.uuid4()))
        await loop.send(cmd, b"{not json", key=b"bad-1")
        results = await consume_all(
            loop.settings.kafka.bootstrap_servers, topics.place_call_results, expected=2,
            timeout=30,
        )  # fmt: skip
        events = await loop.events(3)
        status, _ = await post_json(http, loop.bridge.url, {"uid": "no-such-fields"})
        assert status == 422
        letters = await consume_all(
            loop.settings.kafka.bootstrap_servers, topics.dead_letters, expected=2
        )
    assert {json.loads(r.value)["status"] for r in results} == {"placed", "rejected"}
    assert len(events) == 3
    assert len(letters) == 2
    subject_of = {m.schema_id(): naming.subject(t, m) for t, m in naming.published(topics)}
    for record in [*results, *events, *letters]:
        schema_uri = dict(record.headers)["ce_dataschema"].decode()
        await _check_ids(http, schema_registry, record, subject_of[schema_uri])
    kinds = {dict(r.headers)["ce_dataschema"].decode() for r in [*results, *events, *letters]}
    assert kinds == {m.schema_id() for m in (PlaceCallResult, CallPlaced, CallEvent, DeadLetter)}


async def _command_schema_id(loop: Loop, http: aiohttp.ClientSession, registry: Registry) -> int:
    subject = naming.subject(loop.settings.topics.place_call, PlaceCallCommand)
    latest = await get(http, f"{registry.ccompat_url}/subjects/{subject}/versions/latest")
    return int(latest["id"])


async def test_a_framed_command_places_a_call(
    start_bridge: BridgeFactory, schema_registry: Registry, http: aiohttp.ClientSession
) -> None:
    async with closed_loop(start_bridge, schemas=registry_mode(schema_registry)) as loop:
        schema_id = await _command_schema_id(loop, http, schema_registry)
        cmd = command(str(uuid.uuid4()))
        await loop.send(frame(schema_id, cmd.model_dump_json().encode()), key=b"framed")
        [result] = await loop.results(1)
    assert result["status"] == "placed", result
    assert result["command_id"] == cmd.command_id
    assert loop.calls_per_command() == {cmd.command_id: 1}


async def _refused(loop: Loop, *values: bytes) -> list[dict[str, Any]]:
    """Send framed commands that must be refused: their dead letters, once all are in."""
    await loop.send(*values, key=b"refused")
    letters = await loop.dead_letters(len(values))
    results = await loop.results(len(values))
    assert [r["status"] for r in results] == ["rejected"] * len(values)
    assert loop.calls_per_command() == {}
    return letters


async def test_framed_commands_naming_another_schema_are_dead_lettered(
    start_bridge: BridgeFactory, schema_registry: Registry, http: aiohttp.ClientSession
) -> None:
    async with closed_loop(start_bridge, schemas=registry_mode(schema_registry)) as loop:
        subject = naming.subject(loop.settings.topics.call_events, CallEvent)
        command_subject = naming.subject(loop.settings.topics.place_call, PlaceCallCommand)
        api = schema_registry.ccompat_url
        event_id = int((await get(http, f"{api}/subjects/{subject}/versions/1"))["id"])
        letters = await _refused(
            loop,
            frame(event_id, command(str(uuid.uuid4())).model_dump_json().encode()),
            frame(987654, command(str(uuid.uuid4())).model_dump_json().encode()),
        )
    reasons = {letter["reason_code"]: letter["reason"] for letter in letters}
    mismatch = reasons["schema_id_mismatch"]
    assert f"schema id {event_id} is registered under " in mismatch
    assert "CallEvent v1" in mismatch
    assert mismatch.endswith(f"not under the command subject {command_subject}")
    assert "schema id 987654 is unknown" in reasons["schema_id_unknown"]


async def test_a_framed_command_in_plain_mode_is_dead_lettered(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge) as loop:
        body = command("cmd-" + uuid.uuid4().hex).model_dump_json().encode()
        [letter] = await _refused(loop, frame(1, body))
    assert letter["reason_code"] == "framed_without_registry"
    assert "BRIDGE_SCHEMAS__REGISTRY_URL unset" in letter["reason"]


async def test_a_registry_gone_after_start_stops_neither_ingest_nor_the_worker(
    start_bridge: BridgeFactory,
    new_registry: RegistryFactory,
    http: aiohttp.ClientSession,
) -> None:
    registry = new_registry()
    async with closed_loop(start_bridge, schemas=registry_mode(registry)) as loop:
        schema_id = await _command_schema_id(loop, http, registry)
        registry.stop()
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(f"{registry.ccompat_url}/subjects"):
                pass
        status, _ = await post_json(http, loop.bridge.url, callback())
        assert status == 200
        cmd = command(str(uuid.uuid4()))
        await loop.send(frame(schema_id, cmd.model_dump_json().encode()), key=b"framed")
        # An id not seen before cannot be checked now: dead-lettered, not lost, not placed.
        unchecked = command(str(uuid.uuid4()))
        await loop.send(frame(424242, unchecked.model_dump_json().encode()), key=b"unchecked")
        results = {r["command_id"]: r for r in await loop.results(2)}
        [letter] = await loop.dead_letters(1)
        events = await loop.events(4)  # the posted callback, CallPlaced, BEGIN, END
    assert results[cmd.command_id]["status"] == "placed", results
    assert results[unchecked.command_id]["status"] == "rejected", results
    assert letter["reason_code"] == "schema_id_unverified"
    assert "schema id 424242" in letter["reason"]
    assert loop.calls_per_command() == {cmd.command_id: 1}
    assert len(events) == 4
    for record in events:
        assert read_id_header(record.headers, CONTENT_ID_HEADER) is not None


async def test_plain_mode_records_have_no_id_headers(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    bridge: RunningBridge = await start_bridge()
    status, _ = await post_json(http, bridge.url, callback())
    assert status == 200
    [record] = await consume_all(
        bridge.settings.kafka.bootstrap_servers, bridge.settings.topics.call_events, expected=1
    )
    names = {name for name, _ in record.headers}
    assert names >= CE_HEADERS
    assert not {CONTENT_ID_HEADER, GLOBAL_ID_HEADER} & names


async def test_a_replayed_callback_carries_its_schema_ids(
    start_bridge: BridgeFactory,
    schema_registry: Registry,
    new_topic: NewTopicFactory,
    http: aiohttp.ClientSession,
) -> None:
    bridge = await start_bridge(schemas=registry_mode(schema_registry))
    settings = await with_replay_topic(bridge.settings, new_topic)
    data = callback(direction="OUTBOUND", status="END", disposition="FAILED:503")
    letter = refused_callback(data, received_at=datetime.now(UTC) - timedelta(minutes=5))
    await write_dead_letters(settings, letter)

    code, out, err = await tool(settings, "replay")
    assert code == 0, out + err
    assert "  replayed              1  (callback 1)" in out
    [event] = await consume_all(
        settings.kafka.bootstrap_servers, settings.topics.call_events, expected=1
    )
    assert dict(event.headers)["bridge_replayed_from"] == letter.dead_letter_id.encode()
    await _check_ids(
        http, schema_registry, event, naming.subject(settings.topics.call_events, CallEvent)
    )

    # A topic whose subject the bridge never registered: nothing is replayed without ids.
    elsewhere = settings.model_copy(
        update={"topics": settings.topics.model_copy(update={"call_events": "never-registered"})}
    )
    code, out, err = await tool(elsewhere, "replay")
    assert code != 0
    assert "registry mode: the schema ids of replayed records are not at hand" in out + err
    assert "never-registered-CallEvent" in out + err
