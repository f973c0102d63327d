"""Apicurio's Java serdes against a real Apicurio Registry and a real Kafka: records that carry
their schema id the way registry mode writes them are resolved and validated by the stock
deserializer, and the stock serializer's Confluent framing is what a Python reader expects."""

from __future__ import annotations

import json
import struct
import uuid
from datetime import UTC, datetime

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from bridge.contracts.calls import CallEvent, CallStatus, CallType, Direction, Disposition
from bridge.contracts.commands import PlaceCallCommand
from bridge.contracts.registry import DEFAULT_DIR as SCHEMAS
from tests.support.java_serdes import JavaSerdes
from tests.support.kafka_broker import NewTopicFactory
from tests.support.kafka_records import consume_all
from tests.support.schema_registry import register_schema, schema_by_id

pytestmark = pytest.mark.integration

#: Apicurio's DefaultHeadersHandler: the value's content id, an 8-byte big-endian long.
CONTENT_ID_HEADER = "apicurio.value.contentId"


def _event(status: str) -> bytes:
    event = CallEvent(
        event_id=str(uuid.uuid4()),
        call_id="call-1",
        account_code="acct",
        direction=Direction.OUTBOUND,
        status=CallStatus.END,
        call_type=CallType.VOICE,
        from_number="+15550001",
        from_e164="+15550001",
        to_number="+15550002",
        to_e164="+15550002",
        fonenumber="+15550001",
        fonenumber_e164="+15550001",
        disposition=Disposition.ANSWERED,
        billable_seconds=12,
        received_at=datetime.now(UTC),
    )
    fields = json.loads(event.model_dump_json())
    fields["status"] = status
    return json.dumps(fields).encode()


def _headers(schema_id: int, ce_type: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_type", ce_type.encode()),
        ("ce_id", uuid.uuid4().hex.encode()),
        ("ce_source", b"/tests"),
        (CONTENT_ID_HEADER, struct.pack(">q", schema_id)),
    ]


async def test_deserializer_resolves_header_ids_and_validates(
    java_serdes: JavaSerdes,
    registry_url: str,
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    http: aiohttp.ClientSession,
) -> None:
    topic = await new_topic("serdes-in")
    event_schema = (SCHEMAS / CallEvent.schema_file()).read_text()
    command_schema = (SCHEMAS / PlaceCallCommand.schema_file()).read_text()
    event_id = await register_schema(http, registry_url, f"{topic}-event", event_schema)
    command_id = await register_schema(http, registry_url, f"{topic}-command", command_schema)
    assert event_id != command_id
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value, schema_id in [
            (_event("END"), event_id),
            (b'{"command_id": "c-1", "fonenumber": "+15550001", "to": "+15550002"}', command_id),
            # An enum of the schema's $defs, reached through a $ref.
            (_event("RINGING"), event_id),
        ]:
            await producer.send_and_wait(
                topic, value, key=b"call-1", headers=_headers(schema_id, "com.fonestorm.call.end")
            )
    finally:
        await producer.stop()

    records = await java_serdes.consume(kafka_bootstrap, topic, registry_url, count=3)

    assert [(r.offset, r.valid) for r in records] == [(0, True), (1, True), (2, False)]
    event, command, invalid = records
    # Resolved by the content id alone: a lookup by global id would have filled globalId.
    assert event.resolved == {
        "contentId": event_id,
        "globalId": None,
        "$id": CallEvent.schema_id(),
    }
    assert command.resolved == {
        "contentId": command_id,
        "globalId": None,
        "$id": PlaceCallCommand.schema_id(),
    }
    assert event.value["status"] == "END"
    assert event.key == "call-1"
    assert invalid.header_ids == {CONTENT_ID_HEADER: event_id}
    assert invalid.resolved == event.resolved
    assert invalid.error is not None
    assert "$.status: does not have a value in the enumeration" in invalid.error


async def test_serializer_frames_with_the_ccompat_id(
    java_serdes: JavaSerdes,
    registry_url: str,
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    http: aiohttp.ClientSession,
) -> None:
    topic = await new_topic("serdes-out")
    subject = f"{topic}-value"
    schema = (SCHEMAS / PlaceCallCommand.schema_file()).read_text()
    # The same content under another subject first: the subject's version then has a global id
    # above its content id, and the serializer's default (useId=globalId) would frame that.
    other_id = await register_schema(http, registry_url, f"{topic}-other", schema)
    schema_id = await register_schema(http, registry_url, subject, schema)
    assert schema_id == other_id
    command = {"command_id": "c-1", "fonenumber": "+15550001", "to": "+15550002"}

    sent = await java_serdes.produce(
        kafka_bootstrap, topic, registry_url, subject, command, key="c-1"
    )

    [record] = await consume_all(kafka_bootstrap, topic, expected=1)
    assert (record.partition, record.offset) == (sent.partition, sent.offset)
    assert record.key == b"c-1"
    value = record.value
    assert value is not None
    magic, framed_id = struct.unpack(">bI", value[:5])
    assert (magic, framed_id) == (0, schema_id)
    assert json.loads(await schema_by_id(http, registry_url, framed_id)) == json.loads(schema)
    assert PlaceCallCommand.model_validate_json(value[5:]).command_id == "c-1"
