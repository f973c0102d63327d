"""``TopicFollower``: partitions added to the topic while it runs are followed from their start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from bridge.kafka.follower import TopicFollower
from bridge.settings import KafkaSettings
from tests.support.topics import add_partitions

pytestmark = pytest.mark.integration


async def _write(bootstrap: str, topic: str, partition: int, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


@asynccontextmanager
async def following(
    bootstrap: str, new_topic: Callable[..., Awaitable[str]]
) -> AsyncIterator[tuple[TopicFollower, str, list[tuple[int, bytes | None]]]]:
    """A follower of a new one-partition topic, started: it, the topic, and (partition, value)
    of every record it applied."""
    topic = await new_topic(prefix="grown", partitions=1)
    applied: list[tuple[int, bytes | None]] = []

    def apply(record: ConsumerRecord[bytes, bytes]) -> None:
        applied.append((record.partition, record.value))

    follower = TopicFollower(KafkaSettings(bootstrap_servers=bootstrap), topic, apply)
    await follower.start()
    try:
        yield follower, topic, applied
    finally:
        await follower.stop()


async def test_partitions_added_while_following_are_read_from_their_beginning(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(TopicFollower, "partitions_check", 0.1)
    async with following(kafka_bootstrap, new_topic) as (follower, topic, applied):
        await _write(kafka_bootstrap, topic, 0, b"first")
        await follower.catch_up()
        await add_partitions(kafka_bootstrap, topic, 3)
        await _write(kafka_bootstrap, topic, 2, b"a", b"b")
        async with asyncio.timeout(30):  # found by the periodic look, not by a catch-up
            while (2, b"b") not in applied:
                await follower.progress()
        ends = await follower.end_offsets()
        assert ends[TopicPartition(topic, 2)] == 2
        # From now on a catch-up covers the new partitions as any other.
        await _write(kafka_bootstrap, topic, 1, b"c")
        await follower.catch_up()
        assert applied == [(0, b"first"), (2, b"a"), (2, b"b"), (1, b"c")]


async def test_follow_added_reads_a_new_partition_before_the_periodic_look(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A claim reads its write back with every partition the topic has *now*: another
    writer's record on a partition added a moment ago must not wait for the next look."""
    monkeypatch.setattr(TopicFollower, "partitions_check", 3600.0)
    async with following(kafka_bootstrap, new_topic) as (follower, topic, applied):
        await add_partitions(kafka_bootstrap, topic, 2)
        await _write(kafka_bootstrap, topic, 1, b"the other writer's claim")
        await follower.follow_added()
        assert [tp.partition for tp in follower.partitions] == [0, 1]
        await follower.catch_up()
        assert applied == [(1, b"the other writer's claim")]
