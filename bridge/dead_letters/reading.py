"""Reading the tool's topics: dead letters in a time range, replay records, the command ledger.

Every read is group-less (``group_id=None``: all partitions assigned, nothing committed, no
consumer group disturbed), ``read_committed`` (a replay aborted half-way is not seen), and
bounded: it stops at the end offsets taken when it starts (or at ``--until``), so a topic
that keeps growing never keeps the tool running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from bridge.contracts.commands import ResultStatus
from bridge.contracts.dead_letters import DeadLetter
from bridge.contracts.ledger import LedgerState, read_entry
from bridge.contracts.signing import SIGNATURE_HEADER
from bridge.dead_letters.model import Entry, LedgerView, ReplayRecord
from bridge.dead_letters.timespec import to_millis
from bridge.kafka.options import client_options, topic_partitions
from bridge.kafka.starting import start_or_close
from bridge.settings import KafkaSettings

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]
#: Records per fetch, and so per replay transaction.
BATCH = 500
#: Longest ``dead_letter_id`` and ``reason_code`` read as a dead letter (the bridge writes a
#: UUID and a short code).
MAX_ID_CHARS = 200


class StalledRead(KafkaError):  # type: ignore[misc]
    """Reading made no progress for longer than the Kafka request timeout."""


@asynccontextmanager
async def group_less_consumer(settings: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer without a group, closed on exit."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await start_or_close(consumer.start, consumer.stop)
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _offset_range(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    since: datetime | None,
    until: datetime | None,
) -> dict[TopicPartition, tuple[int, int]]:
    """``[start, stop)`` per partition: records written from ``since`` to ``until``, as Kafka's
    time index finds them, and never past the end offsets as of now."""
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    if since is None:
        starts: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
    else:
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, to_millis(since)))
        starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in partitions}
    stops = dict(ends)
    if until is not None:
        # The first record written after ``until`` is where to stop.
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, to_millis(until) + 1))
        for tp, first_after in found.items():
            if first_after is not None:
                stops[tp] = min(ends[tp], first_after.offset)
    return {tp: (starts[tp], stops[tp]) for tp in partitions}


async def read_range(
    consumer: AIOKafkaConsumer,
    topic: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    stall_timeout: float = 30.0,
) -> AsyncIterator[list[Record]]:
    """Batches of the records of ``topic`` in the range, each partition in offset order.

    Raises ``UnknownTopicOrPartitionError`` when the topic does not exist, and
    :class:`StalledRead` when nothing moves for ``stall_timeout`` seconds (Kafka gone).
    """
    partitions = await topic_partitions(consumer, topic, wait=stall_timeout)
    ranges = await _offset_range(consumer, partitions, since, until)
    consumer.assign(partitions)
    for tp, (start, _) in ranges.items():
        consumer.seek(tp, start)
    active = {tp for tp, (start, stop) in ranges.items() if start < stop}
    # Nothing to read there: no fetches for them in the background either.
    consumer.pause(*(tp for tp in partitions if tp not in active))
    loop = asyncio.get_running_loop()
    moved = loop.time()
    while active:
        fetched = await consumer.getmany(*active, timeout_ms=500, max_records=BATCH)
        batch = [
            record
            for tp, records in fetched.items()
            for record in records
            if record.offset < ranges[tp][1]
        ]
        for tp in list(active):
            # A position may pass offsets that hold no record (compaction, transaction markers).
            if await consumer.position(tp) >= ranges[tp][1]:
                active.discard(tp)
                consumer.pause(tp)
        if fetched or batch:
            moved = loop.time()
        elif loop.time() - moved > stall_timeout:
            raise StalledRead(f"reading {topic} made no progress for {stall_timeout:g}s")
        if batch:
            yield batch


def parse_entry(record: Record) -> Entry:
    """A dead-letter record as an :class:`Entry`; one that does not parse is kept as unreadable."""
    value = record.value or b""
    # A null header value (Kafka allows one) is a signature that verifies nothing, not a crash.
    signatures = tuple(v or b"" for name, v in (record.headers or ()) if name == SIGNATURE_HEADER)
    try:
        letter = DeadLetter.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        error = f"{where}: {first['msg']}"
        return Entry(record.partition, record.offset, record.timestamp, None, error, value)
    odd = _oversized(letter) or _naive_time(letter)
    if odd is not None:
        return Entry(record.partition, record.offset, record.timestamp, None, odd, value)
    return Entry(record.partition, record.offset, record.timestamp, letter, None, value, signatures)


def _oversized(letter: DeadLetter) -> str | None:
    """Why ``letter`` is no dead letter the bridge writes, by a field a replay repeats in its
    replay and audit records (keys and values) whatever its signature; None when it is one.

    Unbounded, one such field would make those records larger than Kafka takes, and the
    replay would stop at that batch on every run.
    """
    for name, text in (
        ("dead_letter_id", letter.dead_letter_id),
        ("reason_code", letter.reason_code),
    ):
        if len(text) > MAX_ID_CHARS:
            return f"{name}: longer than {MAX_ID_CHARS} characters"
    return None


def _naive_time(letter: DeadLetter) -> str | None:
    """Why ``letter``'s times are not the bridge's (which all name their UTC offset, as the
    schema's ``date-time`` does): a replay could not compare one without an offset with now."""
    times = [("received_at", letter.received_at)]
    if letter.record is not None and letter.record.timestamp is not None:
        times.append(("record.timestamp", letter.record.timestamp))
    for name, moment in times:
        if moment.tzinfo is None:
            return f"{name}: a time without a UTC offset"
    return None


async def _fold(
    settings: KafkaSettings, topic: str, apply: Callable[[Record], None], *, stall: float
) -> bool:
    """Apply every record of ``topic`` up to its end; False when the topic does not exist."""
    async with group_less_consumer(settings) as consumer:
        try:
            async for batch in read_range(consumer, topic, stall_timeout=stall):
                for record in batch:
                    apply(record)
        except UnknownTopicOrPartitionError:
            return False
    return True


async def read_replays(settings: KafkaSettings, topic: str) -> dict[str, ReplayRecord] | None:
    """The latest replay record of every dead letter; None when the replay topic is missing."""
    replays: dict[str, ReplayRecord] = {}
    unreadable = 0

    def apply(record: Record) -> None:
        nonlocal unreadable
        if record.key is None:
            return
        key = record.key.decode("utf-8", "replace")
        if record.value is None:  # a tombstone: forgotten
            replays.pop(key, None)
            return
        try:
            replays[key] = ReplayRecord.model_validate_json(record.value)
        except ValidationError:
            unreadable += 1

    found = await _fold(settings, topic, apply, stall=settings.request_timeout_ms / 1000)
    if unreadable:
        log.warning("%d records of %s are not replay records; ignored", unreadable, topic)
    return replays if found else None


async def read_ledger(settings: KafkaSettings, ledger_topic: str) -> LedgerView:
    """The placed calls and finished commands the command ledger remembers (latest entry per
    command id); an empty view when there is no ledger."""
    view = LedgerView()

    def apply(record: Record) -> None:
        if record.key is None:
            return
        command_id = record.key.decode("utf-8", "replace")
        view.finished.pop(command_id, None)
        entry = read_entry(record.value)
        if entry is None:
            return
        result = entry.result
        if entry.state is not LedgerState.DONE or result is None:
            return
        view.finished[command_id] = result.status.value
        if result.status is ResultStatus.PLACED and result.call_id:
            view.correlations[result.call_id] = (result.command_id, result.correlation_id)

    if not await _fold(settings, ledger_topic, apply, stall=settings.request_timeout_ms / 1000):
        log.info("no command ledger %s: replayed events carry no command_id", ledger_topic)
    return view
