"""The test broker itself: a real produce/consume round trip and multi-partition topics."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.kafka_broker import NewTopicFactory
from tests.support.kafka_records import consume_all, consume_for

pytestmark = pytest.mark.integration


async def test_round_trip_with_idempotent_acks_all_producer(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic("roundtrip")
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(
                topic,
                value=f"value-{i}".encode(),
                key=f"key-{i}".encode(),
                headers=[("call-id", f"c{i}".encode())],
            )
            for i in range(3)
        ]
    finally:
        await producer.stop()

    records = await consume_all(kafka_bootstrap, topic, expected=3)

    assert [(r.key, r.value) for r in records] == [
        (f"key-{i}".encode(), f"value-{i}".encode()) for i in range(3)
    ]
    assert [list(r.headers) for r in records] == [[("call-id", f"c{i}".encode())] for i in range(3)]
    assert [r.offset for r in records] == [m.offset for m in sent] == [0, 1, 2]
    # Nothing beyond the three records (an idempotent producer writes no duplicates).
    assert len(await consume_for(kafka_bootstrap, topic, seconds=1.0)) == 3


async def test_new_topic_with_three_partitions(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic("multi", partitions=3)
    other = await new_topic("multi", partitions=3)
    assert topic != other
    assert topic.startswith("multi-")

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        assert await producer.partitions_for(topic) == {0, 1, 2}
        for partition in range(3):
            await producer.send_and_wait(topic, value=b"x%d" % partition, partition=partition)
    finally:
        await producer.stop()

    records = await consume_all(kafka_bootstrap, topic, expected=3)
    assert sorted((r.partition, r.value) for r in records) == [(p, b"x%d" % p) for p in range(3)]
    assert await consume_all(kafka_bootstrap, other, expected=1, timeout=1.0) == []
