"""On a three-broker cluster (``scripts/local-kafka start --brokers 3``) the bridge's topics get
three replicas and ``min.insync.replicas=2``, from `topics create` and from the bridge itself."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bridge.cli import build_parser
from bridge.kafka.topic_admin import wait_for_topics
from bridge.kafka.topics import ensure_topics
from bridge.kafka.topics_cli import run_topics
from bridge.settings import Settings, TopicSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def admin(three_brokers: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=three_brokers, client_id="tests-three")
    await client.start()
    yield client
    await client.close()


@pytest.fixture
async def settings(three_brokers: str, admin: AIOKafkaAdminClient) -> AsyncIterator[Settings]:
    """Settings naming fresh topics on the cluster; they are deleted after the test."""
    suffix = uuid.uuid4().hex[:10]
    names = {field: f"three-{field}-{suffix}" for field in TopicSettings.model_fields}
    config = Settings(
        kafka={"bootstrap_servers": three_brokers, "topic_partitions": 2, "create_topics": True},
        topics=names,
    )
    yield config
    existing = set(await admin.list_topics())
    created = [name for name in names.values() if name in existing]
    if created:
        await admin.delete_topics(created)


async def replication(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, tuple[int, str]]:
    """Per topic: the replicas of its partitions (all the same) and its min.insync.replicas."""
    # Each broker learns of a new topic a moment after CreateTopics returns.
    async with asyncio.timeout(30):
        await wait_for_topics(admin, names)
    replicas = {
        topic["topic"]: {len(p["replicas"]) for p in topic["partitions"]}
        for topic in await admin.describe_topics(names)
    }
    insync = {}
    for response in await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    ):
        for resource in response.to_object()["resources"]:
            entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
            insync[resource["resource_name"]] = entries["min.insync.replicas"]
    return {name: (replicas[name].pop(), insync[name]) for name in names}


async def test_topics_create_gives_three_replicas_and_two_in_sync(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    names = list(settings.topics.model_dump().values())
    args = build_parser().parse_args(["topics", "create"])
    assert await run_topics(settings, args, io.StringIO(), io.StringIO()) == 0

    assert await replication(admin, names) == dict.fromkeys(names, (3, "2"))
    out = io.StringIO()
    args = build_parser().parse_args(["topics", "check"])
    assert await run_topics(settings, args, out, io.StringIO()) == 0
    assert out.getvalue() == "ok: 7 topics as planned for 3 broker(s)\n"


async def test_the_bridge_creates_its_topics_with_three_replicas(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    names = [settings.topics.call_events, settings.topics.command_ledger]
    await ensure_topics(settings, names)

    assert await replication(admin, names) == dict.fromkeys(names, (3, "2"))
