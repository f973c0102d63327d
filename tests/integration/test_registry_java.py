"""Registry mode end to end with Apicurio's Java serdes (Maven Central, 2.6.13) against a real
Apicurio Registry, real Kafka and the sandbox as FoneStorm: a stock Java consumer reads and
validates every event, result and dead letter the bridge wrote, and a stock Java producer's
framed command places a call."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp
import pytest

from bridge.contracts.calls import CallEvent, CallPlaced
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult
from bridge.contracts.dead_letters import DeadLetter
from bridge.schema_registry import naming
from bridge.schema_registry.wire import CONTENT_ID_HEADER, GLOBAL_ID_HEADER, parse_frame
from tests.support.bridge_app import BridgeFactory
from tests.support.callbacks import post_json
from tests.support.commands import closed_loop, command
from tests.support.java_serdes import ConsumedRecord, JavaSerdes
from tests.support.kafka_records import Record, headers_of, read_to_end
from tests.support.schema_registry import CCOMPAT, Registry, registry_mode

pytestmark = pytest.mark.integration


def _where(record: Record | ConsumedRecord) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)


def _resolved_by_its_header_ids(record: ConsumedRecord, written: Record) -> None:
    """The deserializer resolved ``record`` by the ids in its headers, to the schema its
    CloudEvents ``dataschema`` names, and validated it."""
    assert record.valid, record
    assert record.error is None, record
    ids = record.header_ids
    assert ids.keys() >= {CONTENT_ID_HEADER, GLOBAL_ID_HEADER}, record
    resolved = record.resolved
    assert resolved is not None, record
    # A lookup by one id leaves the other None; whichever it used must be the header's.
    looked_up = {k: v for k, v in resolved.items() if k != "$id" and v is not None}
    header_of = {"contentId": CONTENT_ID_HEADER, "globalId": GLOBAL_ID_HEADER}
    assert looked_up, record
    assert looked_up == {k: ids[header_of[k]] for k in looked_up}, record
    assert resolved["$id"] == headers_of(written)["ce_dataschema"], record
    assert record.value == json.loads(written.value), record


async def test_a_java_consumer_validates_every_record_the_bridge_wrote(
    start_bridge: BridgeFactory,
    schema_registry: Registry,
    java_serdes: JavaSerdes,
    http: aiohttp.ClientSession,
) -> None:
    async with closed_loop(start_bridge, schemas=registry_mode(schema_registry)) as loop:
        topics = loop.settings.topics
        bootstrap = loop.settings.kafka.bootstrap_servers
        placed = command(str(uuid.uuid4()))
        await loop.send(placed, b"{not json", key=b"bad-1")
        await loop.results(2)  # placed, rejected
        await loop.events(3)  # CallPlaced, BEGIN, END
        status, _ = await post_json(http, loop.bridge.url, {"uid": "no-such-fields"})
        assert status == 422
        await loop.dead_letters(2)  # the command that is not JSON, the callback
        names = [topics.call_events, topics.place_call_results, topics.dead_letters]
        written = {_where(r): r for name in names for r in await read_to_end(bootstrap, name)}

    records = await java_serdes.consume(bootstrap, names, schema_registry.url, len(written))

    assert sorted(map(_where, records)) == sorted(written)
    for record in records:
        _resolved_by_its_header_ids(record, written[_where(record)])
    by_schema: dict[str, list[Any]] = {}
    for record in records:
        assert record.resolved is not None
        by_schema.setdefault(record.resolved["$id"], []).append(record.value)
    assert sorted(e["status"] for e in by_schema[CallEvent.schema_id()]) == ["BEGIN", "END"]
    assert [e["command_id"] for e in by_schema[CallPlaced.schema_id()]] == [placed.command_id]
    results = sorted(r["status"] for r in by_schema[PlaceCallResult.schema_id()])
    assert results == ["placed", "rejected"]
    assert len(by_schema[DeadLetter.schema_id()]) == 2
    assert by_schema.keys() == {
        m.schema_id() for m in (CallEvent, CallPlaced, PlaceCallResult, DeadLetter)
    }


async def test_a_java_producer_places_a_call(
    start_bridge: BridgeFactory,
    schema_registry: Registry,
    java_serdes: JavaSerdes,
    http: aiohttp.ClientSession,
) -> None:
    async with closed_loop(start_bridge, schemas=registry_mode(schema_registry)) as loop:
        topics = loop.settings.topics
        bootstrap = loop.settings.kafka.bootstrap_servers
        # The subject the bridge registered its command schema under at start.
        subject = naming.subject(topics.place_call, PlaceCallCommand)
        cmd = command(str(uuid.uuid4()))
        await java_serdes.produce(
            bootstrap, topics.place_call, schema_registry.url, subject,
            cmd.model_dump(mode="json"), key=cmd.command_id,
        )  # fmt: skip
        [result] = await loop.results(1)
        [sent] = await read_to_end(bootstrap, topics.place_call)
        async with http.get(
            f"{schema_registry.url}{CCOMPAT}/subjects/{subject}/versions/latest"
        ) as response:
            assert response.status == 200, await response.text()
            latest = await response.json(content_type=None)
    # What the Java producer wrote is the Confluent wire format with the ccompat id...
    assert parse_frame(sent.value).schema_id == latest["id"]
    # ...and the worker read it and placed the call once.
    assert result["status"] == "placed", result
    assert result["command_id"] == cmd.command_id
    assert loop.calls_per_command() == {cmd.command_id: 1}
    [call] = loop.sandbox.state.calls.values()
    assert call.to.endswith(cmd.to)  # in E.164
