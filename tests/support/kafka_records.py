"""Read-back helpers for integration tests against a real Kafka broker.

Both helpers use a group-less consumer (``group_id=None``): it is assigned every partition of
the topic directly, never joins a consumer group, commits nothing and therefore cannot disturb
the consumer groups of the code under test. Both start from the earliest offset and read
with ``isolation_level=read_committed`` (what downstream consumers see; for non-transactional
producers that is every record).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

Record: TypeAlias = ConsumerRecord[bytes, bytes]

NewTopicFactory: TypeAlias = Callable[..., Awaitable[str]]
"""Type of the ``new_topic`` fixture: ``await new_topic(prefix="t", partitions=1) -> str``."""

_POLL_MS = 200


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


async def consume_for(bootstrap: str, topic: str, *, seconds: float) -> list[Record]:
    """Read ``topic`` from the beginning for ``seconds`` and return everything that arrived.

    For "nothing else was produced" checks: unlike :func:`consume_all` it never stops early, so
    a duplicate or stray record produced during the window shows up in the result.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    consumer = _consumer(bootstrap, topic)
    await consumer.start()
    try:
        return await _drain(consumer, deadline, None)
    finally:
        await consumer.stop()
