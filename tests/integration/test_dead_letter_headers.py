"""Repeated headers in dead letters, end to end: a callback refused over a real socket and a
command record dead-lettered by the worker keep every header line, which `dead-letters show`
prints and `dead-letters replay` reads as the receiver and the worker did."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from multidict import CIMultiDict

from bridge.contracts.dead_letters import DeadLetter, KafkaRecordRef
from tests.support.bridge_app import COMMAND_SIGNING_KEY, BridgeFactory
from tests.support.callbacks import callback
from tests.support.commands import closed_loop, command
from tests.support.dead_letters import (
    produce,
    signed,
    tool,
    with_replay_topic,
    write_dead_letters,
)
from tests.support.kafka_broker import NewTopicFactory
from tests.support.kafka_records import consume_all, read_to_end

pytestmark = pytest.mark.integration

FIRST = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SECOND = "00-11111111111111111111111111111111-2222222222222222-01"
REPLAYED_FROM = "bridge_replayed_from"


def shown_json(out: str) -> dict[str, Any]:
    """The dead letter as `show` prints it: the JSON between its first line and the rest."""
    text = out.split("\n", 1)[1].split("\n\n", 1)[0]
    data: dict[str, Any] = json.loads(text)
    return data


async def test_a_callback_with_repeated_headers_is_shown_and_judged_line_by_line(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    bridge = await start_bridge()
    settings = await with_replay_topic(bridge.settings, new_topic)
    body = json.dumps(callback("OUTBOUND", "END", billable_seconds=3)).encode()
    # A valid callback but for its encoding: HTTP makes the two lines "identity, gzip".
    headers = CIMultiDict(
        [
            ("Content-Type", "application/json"),
            ("Content-Encoding", "identity"),
            ("X-Forwarded-For", "10.0.0.1, 10.0.0.2"),
            ("Content-Encoding", "gzip"),
            ("X-Forwarded-For", "10.0.0.3"),
        ]
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(bridge.callback_url, data=body, headers=headers) as response,
    ):
        assert response.status == 415
    servers, topics = settings.kafka.bootstrap_servers, settings.topics
    [record] = await consume_all(servers, topics.dead_letters, expected=1)
    letter = json.loads(record.value)

    code, out, _ = await tool(settings, "show", letter["dead_letter_id"])
    assert code == 0
    lines = shown_json(out)["request"]["header_lines"]
    assert [
        (line["name"], line["value"])
        for line in lines
        if line["name"] in ("Content-Encoding", "X-Forwarded-For")
    ] == [
        ("Content-Encoding", "identity"),
        ("X-Forwarded-For", "10.0.0.1, 10.0.0.2"),
        ("Content-Encoding", "gzip"),
        ("X-Forwarded-For", "10.0.0.3"),
    ]

    # The replay judges the lines as the receiver did: refused, for the same reason.
    code, out, _ = await tool(settings, "replay", "--source", "callback", "-v")
    assert code == 0, out
    assert "  still invalid         1  (callback 1)" in out
    assert "now unsupported_content_encoding: Content-Encoding 'identity, gzip'" in out
    assert await read_to_end(servers, topics.call_events) == []


async def test_a_command_with_repeated_headers_is_shown_and_continues_the_workers_trace(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    async with closed_loop(start_bridge) as loop:
        settings = await with_replay_topic(loop.settings, new_topic)
        kafka, topics = settings.kafka.bootstrap_servers, settings.topics
        fixed = command(f"fixed-{uuid.uuid4()}")
        broken = fixed.model_dump(mode="json", exclude_none=True)
        del broken["to"]
        sent: list[tuple[str, bytes | None]] = [
            ("traceparent", FIRST.encode()),
            ("X-Foo", b"1"),
            ("traceparent", SECOND.encode()),
            ("X-Foo", b"1, 2"),
            ("bin", b"\xff\x00"),
            ("none", None),
        ]
        producer = AIOKafkaProducer(bootstrap_servers=kafka)
        await producer.start()
        try:
            await producer.send_and_wait(
                topics.place_call,
                json.dumps(broken).encode(),
                key=fixed.command_id.encode(),
                headers=sent,  # type: ignore[arg-type]
            )
        finally:
            await producer.stop()
        (refused,) = await loop.dead_letters(1)
        assert refused["reason_code"] == "invalid_command"
        assert refused["record"]["header_lines"] == [
            {"name": "traceparent", "value": FIRST, "value_encoding": "utf-8"},
            {"name": "X-Foo", "value": "1", "value_encoding": "utf-8"},
            {"name": "traceparent", "value": SECOND, "value_encoding": "utf-8"},
            {"name": "X-Foo", "value": "1, 2", "value_encoding": "utf-8"},
            {"name": "bin", "value": "/wA=", "value_encoding": "base64"},
            {"name": "none", "value": None, "value_encoding": "utf-8"},
        ]

        code, out, _ = await tool(settings, "show", refused["dead_letter_id"])
        assert code == 0
        assert [line for line in out.splitlines() if line.startswith("  header ")] == [
            f"  header traceparent = {FIRST}",
            "  header X-Foo = 1",
            f"  header traceparent = {SECOND}",
            "  header X-Foo = 1, 2",
            "  header bin = (binary, hex) ff 00",
            "  header none = (no value)",
        ]

        # Its value repaired (as in the tool's own tests) and signed as the worker signs; and a
        # forgery: its lines reordered under that same signature.
        record = KafkaRecordRef.model_validate(
            refused["record"] | {"value": fixed.model_dump_json()}
        )
        repaired = DeadLetter.model_validate(
            refused | {"dead_letter_id": str(uuid.uuid4()), "record": record}
        )
        await write_dead_letters(settings, repaired)
        lines = record.header_lines or []
        forged = repaired.model_copy(
            update={
                "dead_letter_id": str(uuid.uuid4()),
                "record": record.model_copy(update={"header_lines": [lines[2], *lines[:2]]}),
            }
        )
        _, _, signature = signed(forged.model_copy(update={"record": record}), COMMAND_SIGNING_KEY)
        await produce(
            settings, topics.dead_letters, (None, forged.model_dump_json().encode(), signature)
        )

        code, out, _ = await tool(settings, "replay", "--source", "command", "-v")
        assert code == 0, out
        assert f"replayed         {repaired.dead_letter_id}" in out
        assert "now bad_signature" in out
        await loop.results(2)  # the refusal, then the replayed command placed
        commands = await read_to_end(kafka, topics.place_call)
        (replayed,) = [r for r in commands if REPLAYED_FROM in dict(r.headers)]
        # The trace the worker continued when the command came: the first traceparent.
        assert [(n, v) for n, v in replayed.headers if n == "traceparent"] == [
            ("traceparent", FIRST.encode())
        ]
        assert loop.calls_per_command() == {fixed.command_id: 1}
