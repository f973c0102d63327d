"""A cluster without the bridge's topics (and with broker auto-creation on, Kafka's default).

The bridge's clients never make the broker create a topic: a missing topic stays missing, the
receiver answers 503 naming it and ``/readyz`` says which it is, until an operator creates it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import aiohttp
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bridge.errors import PublishError
from bridge.kafka.publisher import Publisher
from bridge.kafka.topics import TopicWatch
from bridge.obs.metrics import Metrics
from bridge.settings import KafkaSettings
from tests.support.bridge_app import BridgeFactory
from tests.support.callbacks import callback
from tests.support.kafka_broker import REPLICATION_FACTOR

pytestmark = pytest.mark.integration


def _absent(prefix: str) -> str:
    return f"{prefix}-absent-{uuid.uuid4().hex[:12]}"


async def test_publishing_to_a_missing_topic_does_not_create_it(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    publisher = Publisher(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, produce_timeout=2.0), Metrics()
    )
    await publisher.start()
    try:
        await publisher.wait_ready(30)
        name = _absent("events")
        with pytest.raises(PublishError):
            await publisher.publish(name, b"{}")
    finally:
        await publisher.stop()
    # The test broker runs with auto.create.topics.enable=true: aiokafka alone would create it.
    assert name not in await admin.list_topics()


async def test_missing_topics_give_503_naming_them_until_an_operator_creates_them(
    start_bridge: BridgeFactory,
    http: aiohttp.ClientSession,
    admin: AIOKafkaAdminClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(TopicWatch, "recheck", 0.2)
    events, letters = _absent("events"), _absent("dlq")
    bridge = await start_bridge(
        ready=False, topics={"call_events": events, "dead_letters": letters}
    )
    try:
        for _ in range(100):
            async with http.get(f"{bridge.url}/readyz") as ready:
                body = await ready.json()
            if "missing_topics" in body:
                break
            await asyncio.sleep(0.1)
        assert ready.status == 503
        assert body["missing_topics"] == sorted([events, letters])
        assert body["checks"]["topics"] is False

        async with http.post(bridge.callback_url, json=callback()) as response:
            error = (await response.json())["error"]
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        # Refused at once as missing, not after waiting out the produce timeout for metadata
        # ("did not acknowledge").
        assert f"topic {events!r} does not exist" in error["message"]
        await asyncio.sleep(1.0)  # several rechecks
        existing = await admin.list_topics()
        assert events not in existing
        assert letters not in existing
        missing_lines = [r for r in caplog.records if "do not exist" in r.getMessage()]
        assert len(missing_lines) == 1, "a missing topic is logged once, not per recheck"
        assert missing_lines[0].levelno == logging.ERROR

        await admin.create_topics([NewTopic(n, 1, REPLICATION_FACTOR) for n in (events, letters)])
        for _ in range(100):
            async with http.get(f"{bridge.url}/readyz") as ready:
                body = await ready.json()
            if ready.status == 200:
                break
            await asyncio.sleep(0.1)
        assert ready.status == 200, body
        assert "missing_topics" not in body
        for _ in range(50):
            async with http.post(bridge.callback_url, json=callback()) as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.1)  # the partition leader may take a moment
        assert response.status == 200
    finally:
        await admin.delete_topics([n for n in (events, letters) if n in await admin.list_topics()])
