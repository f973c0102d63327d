"""The publisher against a real broker: what the broker refuses does not break what follows."""

from __future__ import annotations

import pytest

from bridge.errors import RecordRejected
from bridge.kafka.publisher import Publisher
from bridge.obs.metrics import Metrics
from bridge.settings import Settings
from tests.support.kafka_broker import NewTopicFactory
from tests.support.kafka_records import consume_all

pytestmark = pytest.mark.integration


async def test_a_record_the_broker_refuses_as_too_large_leaves_its_partition_writable(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    # Smaller than the producer's own limit (1 MB), so the broker is the one that refuses.
    topic = await new_topic("small", configs={"max.message.bytes": "20000"})
    settings = Settings(kafka={"bootstrap_servers": kafka_bootstrap, "produce_timeout": 10.0})
    publisher = Publisher(settings.kafka, Metrics())
    await publisher.start()
    try:
        await publisher.wait_ready(30)
        await publisher.publish(topic, b"before", key=b"k")
        with pytest.raises(RecordRejected):
            await publisher.publish(topic, b"x" * 50_000, key=b"k")
        # The same partition, after the refusal.
        await publisher.publish(topic, b"after", key=b"k")
        await publisher.publish(topic, b"and on", key=b"k")
    finally:
        await publisher.stop()
    records = await consume_all(kafka_bootstrap, topic, expected=3)
    assert [r.value for r in records] == [b"before", b"after", b"and on"]
