"""Reading records back from a real Kafka broker.

Every helper uses a group-less consumer (``group_id=None``): it is assigned every partition of
the topic directly, never joins a consumer group, commits nothing and therefore cannot disturb
the consumer groups of the code under test. All start from the earliest offset and read
with ``isolation_level=read_committed`` (what downstream consumers see; for non-transactional
producers that is every record).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

Record: TypeAlias = ConsumerRecord[bytes, bytes]

_POLL_MS = 200
#: How long :func:`read_to_end` waits for a transaction's markers.
_SETTLE_S = 10.0


def _consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Only committed data: what a downstream read_committed consumer would see.
        isolation_level="read_committed",
        metadata_max_age_ms=1000,  # pick up partitions added after the consumer started
    )


async def _drain(
    consumer: AIOKafkaConsumer, loop_deadline: float, expected: int | None
) -> list[Record]:
    loop = asyncio.get_running_loop()
    records: list[Record] = []
    while expected is None or len(records) < expected:
        remaining = loop_deadline - loop.time()
        if remaining <= 0:
            break
        batches = await consumer.getmany(timeout_ms=max(1, min(_POLL_MS, int(remaining * 1000))))
        for batch in batches.values():
            records.extend(batch)
    return records


async def consume_all(
    bootstrap: str, topic: str, *, expected: int, timeout: float = 20.0
) -> list[Record]:
    """Read ``topic`` from the beginning until ``expected`` records arrived or ``timeout`` passed.

    Returns every record read, possibly fewer than ``expected`` (on timeout) or more (the last
    fetch may carry extra records): assert on the result rather than relying on a count here.
    Records of one partition keep their offset order; partitions may interleave.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    consumer = _consumer(bootstrap, topic)
    await consumer.start()
    try:
        return await _drain(consumer, deadline, expected)
    finally:
        await consumer.stop()


async def consume_for(
    bootstrap: str, topic: str, *, seconds: float, timeout: float = 60.0
) -> list[Record]:
    """Every record of ``topic`` written before the call, and whatever else arrives within
    ``seconds`` of it.

    For "nothing else was produced" checks: unlike :func:`consume_all` it never stops early, so
    a duplicate or stray record produced during the window shows up in the result. What was
    there at the call is read whole, as :func:`read_to_end` reads it, however long the consumer
    takes to start and fetch: the window is for late records only, and a window alone would
    return a partial read whenever the broker or this process is slow.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with _assigned_consumer(bootstrap) as consumer:
        records = await _read_through(consumer, topic, bootstrap, timeout)
        return records + await _drain(consumer, deadline, None)


async def consume_until_distinct(
    bootstrap: str, topic: str, key: Any, expected: int, *, timeout: float
) -> list[Any]:
    """Read ``topic`` from the start until ``expected`` distinct ``key(record)`` or ``timeout``.

    Unlike a record count, a distinct count is not fooled by records published twice.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    consumer = _consumer(bootstrap, topic)
    await consumer.start()
    records: list[Any] = []
    seen: set[Any] = set()
    try:
        while len(seen) < expected and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                for record in batch:
                    records.append(record)
                    seen.add(key(record))
        return records
    finally:
        await consumer.stop()


async def read_to_end(bootstrap: str, topic: str, *, timeout: float = 60.0) -> list[Any]:
    """Every record of ``topic`` up to its end offsets as of now (an exact count: no early stop
    like a record-count wait, no partial read like a fixed time window)."""
    async with _assigned_consumer(bootstrap) as consumer:
        return await _read_through(consumer, topic, bootstrap, timeout)


@asynccontextmanager
async def _assigned_consumer(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A read_committed consumer without a group, for :func:`from_beginning` to assign."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _read_through(
    consumer: AIOKafkaConsumer, topic: str, bootstrap: str, timeout: float
) -> list[Record]:
    """Every record of ``topic`` up to its end offsets as of now, settled (:func:`_settled`)."""
    ends = await _settled(consumer, await from_beginning(consumer, topic), bootstrap)
    records: list[Record] = []
    async with asyncio.timeout(timeout):
        while not await read_up_to(consumer, ends):
            for batch in (await consumer.getmany(timeout_ms=_POLL_MS)).values():
                records.extend(batch)
    return records


async def _settled(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], bootstrap: str
) -> dict[TopicPartition, int]:
    """``ends`` once no transaction is pending on those partitions (their last stable offsets
    have reached their high watermarks), else as they stand after :data:`_SETTLE_S`.

    A transaction's commit returns before Kafka has written its markers into the partitions,
    and until then a read_committed end offset stops short of the committed records: a read
    straight after a replay would miss what it wrote. A transaction still open (nothing here
    holds one for long) leaves the committed end offsets as they are.
    """
    raw = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await raw.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _SETTLE_S
        while ends != await raw.end_offsets(list(ends)) and loop.time() < deadline:
            await asyncio.sleep(0.05)
            ends = await consumer.end_offsets(list(ends))
        return ends
    finally:
        await raw.stop()


async def from_beginning(consumer: AIOKafkaConsumer, topic: str) -> dict[TopicPartition, int]:
    """Assign ``consumer`` every partition of ``topic``, at its beginning; their end offsets
    as of now."""
    async with asyncio.timeout(30):
        # A metadata answer may come without the topic (seen under load): ask again.
        while not (partitions := await _partitions(consumer, topic)):
            await asyncio.sleep(0.1)
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    return ends


async def read_up_to(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether ``consumer`` has read every partition of ``ends`` up to its end offset."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


def headers_of(record: Any) -> dict[str, str]:
    """A record's headers, values decoded."""
    return {name: value.decode() for name, value in record.headers}


def event_ids(records: list[Any]) -> set[str]:
    """``event_id`` of every CallEvent record."""
    return {json.loads(r.value)["event_id"] for r in records}


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())
