"""A Kafka client stopped while it is still starting closes every connection it opened.

aiokafka's bootstrap, cancelled while its metadata request is out, forgets the connection it
sent it on: a receiver stopped just after it became ready left a TLS socket open (CI). The
proxy holds the broker's answer to that request, the client is stopped, the answer released.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable

import pytest

from bridge.kafka.follower import TopicFollower
from bridge.kafka.publisher import Publisher
from bridge.kafka.topics import ensure_topics
from bridge.obs.metrics import Metrics
from bridge.settings import Settings
from tests.support.kafka_proxy import HoldingProxy

pytestmark = pytest.mark.integration


async def check_topics(settings: Settings, topic: str) -> None:
    await ensure_topics(settings, [topic])


async def follow(settings: Settings, topic: str) -> None:
    follower = TopicFollower(settings.kafka, topic, lambda record: None)
    try:
        await follower.start()
    finally:
        await follower.stop()


async def publish(settings: Settings, topic: str) -> None:
    publisher = Publisher(settings.kafka, Metrics())
    await publisher.start()
    try:
        await asyncio.Event().wait()
    finally:
        await publisher.stop()


@pytest.mark.parametrize("run", [check_topics, follow, publish], ids=lambda run: run.__name__)
async def test_stopped_while_starting_closes_its_connections(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    run: Callable[[Settings, str], Awaitable[None]],
) -> None:
    topic = await new_topic("start")
    async with HoldingProxy(kafka_bootstrap) as proxy:
        settings = Settings(kafka={"bootstrap_servers": proxy.address})
        task = asyncio.create_task(run(settings, topic))
        await asyncio.wait_for(proxy.held.wait(), timeout=10)
        task.cancel()
        await asyncio.sleep(0.2)  # the cancellation lands while the answer is held
        proxy.release()
        await asyncio.wait([task], timeout=10)
        assert task.cancelled()
        await proxy.until_closed(timeout=5)
    gc.collect()  # an unclosed connection would now warn (and fail: filterwarnings=error)
