"""``RecordReader``: one record by partition and offset, or None once Kafka no longer has it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import RecordsToDelete

from bridge.kafka.record_reader import RecordReader
from bridge.settings import KafkaSettings
from tests.support.topics import kafka_admin

pytestmark = pytest.mark.integration


async def test_a_record_is_read_back_by_its_place_until_it_is_deleted(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]]
) -> None:
    topic = await new_topic(prefix="reread", partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(topic, b"v%d" % n, key=b"k%d" % n, partition=1)
    finally:
        await producer.stop()
    reader = RecordReader(KafkaSettings(bootstrap_servers=kafka_bootstrap), topic)
    try:
        found = [await reader.read(1, offset) for offset in (3, 0, 4)]
        assert [(r.offset, r.key, r.value) for r in found if r] == [
            (3, b"k3", b"v3"), (0, b"k0", b"v0"), (4, b"k4", b"v4"),
        ]  # fmt: skip
        assert await reader.read(1, 5) is None  # past the end
        assert await reader.read(0, 0) is None  # an empty partition
        async with kafka_admin(kafka_bootstrap) as admin:
            await admin.delete_records({TopicPartition(topic, 1): RecordsToDelete(3)})
        assert await reader.read(1, 1) is None  # deleted
        record = await reader.read(1, 3)
        assert record is not None
        assert record.value == b"v3"
    finally:
        await reader.stop()
