"""Hostile command records from a plain producer: each gets its dead letter, and its result when
an id can be read, never a call, and the worker goes on with the next record."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from bridge.obs.logs import ContextFilter, JsonFormatter
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import Loop, closed_loop, command
from tests.support.kafka_broker import NewTopicFactory
from tests.support.kafka_records import consume_for
from tests.support.raw_header_names import Raw, produce_one_batch

pytestmark = pytest.mark.integration


async def everything(loop: Loop, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic``, read long enough that a late extra one would show."""
    records = await consume_for(loop.settings.kafka.bootstrap_servers, topic, seconds=2)
    return [json.loads(r.value) for r in records]


async def test_values_the_json_reader_chokes_on_are_rejected_with_the_keys_id(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge) as loop:
        good = command(f"good-{uuid.uuid4()}").model_dump(mode="json")
        hostile = {
            # Nested deeper than Python's recursion limit: a few kilobytes.
            b"deep": b'{"command_id": "deep", "x": ' + b"[" * 5000,
            # A lone surrogate: JSON text may escape one, but no UTF-8 result can carry it.
            b"surrogate": json.dumps(good | {"command_id": "\ud800"}).encode(),
            b"tombstone": None,
            b"not-an-object": b'["deep"]',
        }
        for key, value in hostile.items():
            await loop.send(value, key=key)  # type: ignore[arg-type]
        await loop.send(json.dumps(good).encode(), key=good["command_id"].encode())
        # The good command was sent last, on its own partition maybe: wait for every result.
        await loop.results(len(hostile) + 1)
        results = await everything(loop, loop.settings.topics.place_call_results)
        assert Counter((r["command_id"], r["status"]) for r in results) == Counter(
            {(key.decode(), "rejected"): 1 for key in hostile} | {(good["command_id"], "placed"): 1}
        )
        letters = await everything(loop, loop.settings.topics.dead_letters)
        by_key = {letter["record"]["key"]: letter for letter in letters}
        assert len(letters) == len(by_key) == len(hostile)
        assert {letter["reason_code"] for letter in letters} == {"invalid_command"}
        assert "recursion limit" in by_key["deep"]["reason"]
        assert "not valid JSON" in by_key["surrogate"]["reason"]
        assert by_key["tombstone"]["reason"] == "record has no value"
        assert loop.calls_per_command() == Counter({good["command_id"]: 1})


async def test_a_key_or_headers_too_large_to_dead_letter_whole_are_cut(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge) as loop:
        # Each under the command topic's 1 MB limit, each over it once in a dead letter's JSON:
        # base64 grows the key by a third, "\u0001" a control character sixfold.
        huge_key = b"\xff" * 800_000
        flood = [(f"h{i}", b"\x01" * 10) for i in range(40_000)]
        premium = command(f"premium-{uuid.uuid4()}", to="+1 900 555 0100")
        producer = AIOKafkaProducer(bootstrap_servers=loop.settings.kafka.bootstrap_servers)
        await producer.start()
        try:
            topic = loop.settings.topics.place_call
            await producer.send_and_wait(topic, b"{not json", key=huge_key)
            await producer.send_and_wait(topic, b"{not json", key=b"flooded", headers=flood)
            # Valid, refused by the destination policy, keyed by something else.
            await producer.send_and_wait(topic, premium.model_dump_json().encode(), key=huge_key)
        finally:
            await producer.stop()
        good = command(f"good-{uuid.uuid4()}")
        await loop.send(good)
        await loop.results(3)
        results = await everything(loop, loop.settings.topics.place_call_results)
        assert Counter((r["command_id"], r["status"]) for r in results) == Counter(
            {("flooded", "rejected"): 1, (premium.command_id, "rejected"): 1}
            | {(good.command_id, "placed"): 1}
        )  # the first has no readable id: a dead letter only
        letters = await everything(loop, loop.settings.topics.dead_letters)
        assert sorted(letter["reason_code"] for letter in letters) == [
            "destination_not_allowed", "invalid_command", "invalid_command",
        ]  # fmt: skip
        for letter in letters:
            record = letter["record"]
            assert (record["value"], record["value_truncated"]) == (None, True)
            assert "to fit Kafka's record size limit]" in letter["reason"]
            assert record["key"] in ("flooded", base64.b64encode(huge_key)[:1024].decode() + "…")
            assert record["headers"] == {}
            lines = record["header_lines"]
            assert len(lines or ()) == (32 if record["key"] == "flooded" else 0)
        assert loop.calls_per_command() == Counter({good.command_id: 1})


async def test_a_dead_letter_too_large_for_its_topic_keeps_its_header_lines(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    # Between what the headers below weigh in a dead letter once and twice (the mapping and
    # the lines): "\u0001" is six bytes of JSON.
    limit = 600_000
    dead_letters = await new_topic("dlq", configs={"max.message.bytes": str(limit)})
    async with closed_loop(start_bridge, topics={"dead_letters": dead_letters}) as loop:
        # ~530 KB once whole; 100 headers, ~395 KB once cut to 1,024 characters and 32 headers.
        some = [(f"s{i:02d}" + "\x01" * 1100, b"\x01" * 1100) for i in range(40)]
        many = [(f"m{i:03d}" + "\x01" * 2000, b"\x01" * 2000) for i in range(100)]
        producer = AIOKafkaProducer(bootstrap_servers=loop.settings.kafka.bootstrap_servers)
        await producer.start()
        try:
            topic = loop.settings.topics.place_call
            await producer.send_and_wait(topic, b"{not json", key=b"some", headers=some)
            await producer.send_and_wait(topic, b"{not json", key=b"many", headers=many)
        finally:
            await producer.stop()
        await loop.results(2)
        letters = await everything(loop, dead_letters)
        by_key = {letter["record"]["key"]: letter for letter in letters}
        assert len(letters) == len(by_key) == 2
        # Whole, value and all, in header_lines only.
        record = by_key["some"]["record"]
        assert by_key["some"]["reason"].endswith(
            "[headers in header_lines only, to fit Kafka's record size limit]"
        )
        assert (record["value"], record["value_truncated"], record["headers"]) == (
            "{not json", False, {},
        )  # fmt: skip
        assert [(line["name"], line["value"]) for line in record["header_lines"]] == [
            (name, value.decode()) for name, value in some
        ]
        # Cut, in header_lines only: not dropped.
        record = by_key["many"]["record"]
        assert by_key["many"]["reason"].endswith(
            "[key (4 bytes) and headers (100) cut to 1024 characters each, at most 32 headers "
            "kept, in header_lines only, to fit Kafka's record size limit]"
        )
        assert (record["value"], record["value_truncated"], record["headers"]) == (None, True, {})
        assert [(line["name"], line["value"]) for line in record["header_lines"]] == [
            (name[:1024] + "…", value.decode()[:1024] + "…") for name, value in many[:32]
        ]


async def test_a_timestamp_past_year_9999_still_gets_a_result_and_a_dead_letter(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    # Brokers before Kafka 4.0 take any timestamp by default; this one is told to.
    commands_topic = await new_topic(
        "commands", partitions=3, configs={"message.timestamp.after.max.ms": str(2**63 - 1)}
    )
    async with closed_loop(start_bridge, topics={"place_call": commands_topic}) as loop:
        valid = command(f"far-future-{uuid.uuid4()}")
        year_10000 = 253_402_300_800_000  # ms: the first that Python's datetime cannot hold
        producer = AIOKafkaProducer(bootstrap_servers=loop.settings.kafka.bootstrap_servers)
        await producer.start()
        try:
            for value, key in ((valid.model_dump_json().encode(), valid.command_id), (b"{", "bad")):
                await producer.send_and_wait(
                    commands_topic, value, key=key.encode(), timestamp_ms=year_10000
                )
        finally:
            await producer.stop()
        good = command(f"good-{uuid.uuid4()}")
        await loop.send(good)
        await loop.results(3)
        results = await everything(loop, loop.settings.topics.place_call_results)
        assert Counter((r["command_id"], r["status"]) for r in results) == Counter(
            {
                (valid.command_id, "placed"): 1,
                ("bad", "rejected"): 1,
                (good.command_id, "placed"): 1,
            }
        )
        [letter] = await everything(loop, loop.settings.topics.dead_letters)
        assert (letter["record"]["key"], letter["record"]["timestamp"]) == ("bad", None)
        assert loop.calls_per_command() == Counter({valid.command_id: 1, good.command_id: 1})


async def test_a_command_with_thousands_of_errors_gets_a_bounded_reason(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge) as loop:
        # 14,000 metadata entries of the wrong type, each named in its error: under 1 MB as a
        # command, 1.4 MB of reasons.
        metadata = {f"{n:06d}".ljust(60, "k"): 0 for n in range(14_000)}
        many = command(f"many-{uuid.uuid4()}").model_dump(mode="json") | {"metadata": metadata}
        await loop.send(json.dumps(many).encode(), key=many["command_id"].encode())
        good = command(f"good-{uuid.uuid4()}")
        await loop.send(good)
        await loop.results(2)
        results = {
            r["command_id"]: r
            for r in await everything(loop, loop.settings.topics.place_call_results)
        }
        assert {i: r["status"] for i, r in results.items()} == {
            many["command_id"]: "rejected", good.command_id: "placed",
        }  # fmt: skip
        reason = results[many["command_id"]]["error_message"]
        assert reason.startswith(
            f"metadata.{'000000'.ljust(60, 'k')}: Input should be a valid string"
        )
        assert reason.endswith("and 13990 more errors")
        [letter] = await everything(loop, loop.settings.topics.dead_letters)
        assert letter["reason"] == reason
        # The first 256 KB of the value, as any: the reason no longer makes it too large.
        assert len(letter["record"]["value"]) == 256 * 1024


class _Lines(logging.Handler):
    """The bridge's log lines as production writes them (JSON, with the context fields)."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_an_invalid_commands_huge_id_is_cut_in_its_log_lines(
    start_bridge: BridgeFactory,
) -> None:
    lines = _Lines()
    logging.getLogger("bridge").addHandler(lines)
    try:
        async with closed_loop(start_bridge) as loop:
            await loop.send(b"{", key=b"k" * 500_000)
            [result] = await loop.results(1)
            assert result["status"] == "rejected"
    finally:
        logging.getLogger("bridge").removeHandler(lines)
    rejected = [json.loads(line) for line in lines.lines if "command rejected" in line]
    assert [entry["command_id"] for entry in rejected] == ["k" * 128 + "…"]
    assert max(map(len, lines.lines)) < 4096


@pytest.mark.parametrize("compression", ["none", "gzip"])
async def test_a_header_name_that_is_not_utf8_stops_neither_that_command_nor_the_next(
    start_bridge: BridgeFactory, compression: str
) -> None:
    # librdkafka (kcat) and sarama send any bytes as a header name; aiokafka's reader raised on
    # every later fetch, and the worker consumed nothing more. One batch: good, bad, good.
    async with closed_loop(start_bridge) as loop:
        ids = [f"{name}-{uuid.uuid4()}" for name in ("before", "bad-header", "after")]
        produce_one_batch(
            loop.settings.kafka.bootstrap_servers,
            loop.settings.topics.place_call,
            0,
            [
                Raw(ids[0], command(ids[0]).model_dump_json()),
                Raw(ids[1], command(ids[1]).model_dump_json(), bad_header="\xff\xfename"),
                Raw(ids[2], command(ids[2]).model_dump_json()),
            ],
            compression,
        )
        await loop.send(command(later := f"later-{uuid.uuid4()}"))
        await loop.results(4)
        results = await everything(loop, loop.settings.topics.place_call_results)
        assert Counter((r["command_id"], r["status"]) for r in results) == Counter(
            {(command_id, "placed"): 1 for command_id in [*ids, later]}
        )
        assert loop.calls_per_command() == Counter(dict.fromkeys([*ids, later], 1))
        records = await consume_for(
            loop.settings.kafka.bootstrap_servers, loop.settings.topics.place_call, seconds=1
        )
        headers = {r.key.decode(): dict(r.headers) for r in records if r.key.decode() in ids}
        # Read as Java's client reads it: U+FFFD where the bytes are not UTF-8.
        assert headers[ids[1]] == {"ok": b"1", "\ufffd\ufffdname": b"x"}
        assert headers[ids[0]] == headers[ids[2]] == {"ok": b"1"}
