"""``EndOffsets``: the prepared ``ListOffsets`` answers what aiokafka's ``end_offsets()`` does.

Against the real broker: records on some partitions and not others, more written between two
asks, and the fallback to aiokafka when the prepared request cannot be used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.protocol.offset import OffsetRequest

from bridge.kafka.end_offsets import EndOffsets

pytestmark = pytest.mark.integration

PARTITIONS = 3


@pytest.fixture
async def consumer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None)
    await consumer.start()
    yield consumer
    await consumer.stop()


async def _write(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, count in counts.items():
            for n in range(count):
                await producer.send_and_wait(topic, b"%d" % n, partition=partition)
    finally:
        await producer.stop()


async def test_the_same_ends_as_aiokafka_as_records_come(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    consumer: AIOKafkaConsumer,
) -> None:
    topic = await new_topic(prefix="ends", partitions=PARTITIONS)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    await consumer.end_offsets(partitions)  # metadata for the topic, as the follower has it
    ends = EndOffsets(consumer, partitions)
    assert await ends.fetch() == dict.fromkeys(partitions, 0)
    await _write(kafka_bootstrap, topic, {0: 3, 2: 1})
    expected = {partitions[0]: 3, partitions[1]: 0, partitions[2]: 1}
    assert await ends.fetch() == expected == await consumer.end_offsets(partitions)
    await _write(kafka_bootstrap, topic, {1: 2})
    assert await ends.fetch() == {**expected, partitions[1]: 2}


async def test_known_leaders_need_no_help_from_aiokafka(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    consumer: AIOKafkaConsumer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = await new_topic(prefix="ends-direct", partitions=PARTITIONS)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    await _write(kafka_bootstrap, topic, {2: 2})
    await consumer.end_offsets(partitions)

    async def fallen_back(_: object) -> None:
        raise AssertionError("the prepared request was not used")

    monkeypatch.setattr(consumer, "end_offsets", fallen_back)
    ends = await EndOffsets(consumer, partitions).fetch()
    assert ends == {partitions[0]: 0, partitions[1]: 0, partitions[2]: 2}


async def test_unknown_leaders_ask_aiokafka(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    consumer: AIOKafkaConsumer,
) -> None:
    # A consumer that never asked about the topic has no leaders for it: aiokafka's own path
    # (metadata refresh, retries) answers.
    topic = await new_topic(prefix="ends-cold", partitions=PARTITIONS)
    await _write(kafka_bootstrap, topic, {1: 2})
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    ends = await EndOffsets(consumer, partitions).fetch()
    assert ends == {partitions[0]: 0, partitions[1]: 2, partitions[2]: 0}


async def test_an_error_for_any_partition_is_no_answer(
    new_topic: Callable[..., Awaitable[str]],
    consumer: AIOKafkaConsumer,
) -> None:
    # The broker's answer for a partition it does not have is an error code: no end is made
    # up for it, and the whole answer is left to aiokafka's path.
    topic = await new_topic(prefix="ends-missing", partitions=1)
    real, missing = TopicPartition(topic, 0), TopicPartition(topic, 7)
    await consumer.end_offsets([real])
    client = consumer._client
    request = OffsetRequest(-1, 0, [(topic, [(0, -1), (7, -1)])])
    response = await client.send(client.cluster.leader_for_partition(real), request)
    assert EndOffsets(consumer, [real, missing]).read([response]) is None
    assert EndOffsets(consumer, [real]).read([response]) is None
