"""On a three-broker cluster (``scripts/local-kafka start --brokers 3``) the bridge's topics get
three replicas and ``min.insync.replicas=2``, from `topics create` and from the bridge itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bridge.kafka.topics import ensure_topics
from bridge.settings import Settings
from tests.support.kafka_broker import run_local_kafka, three_brokers_instance
from tests.support.topics import check_settles, fresh_topics, topics_tool

pytestmark = pytest.mark.integration


@pytest.fixture
def topics_bootstrap(three_brokers: str) -> str:
    """The ``admin`` fixture's cluster: the three brokers."""
    return three_brokers


@pytest.fixture
async def settings(three_brokers: str, admin: AIOKafkaAdminClient) -> AsyncIterator[Settings]:
    """Settings naming fresh topics on the cluster; they are deleted after the test."""
    kafka = {"bootstrap_servers": three_brokers, "topic_partitions": 2, "create_topics": True}
    async with fresh_topics(admin, "three", kafka=kafka) as config:
        yield config


async def replication(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, tuple[int, str]]:
    """Per topic: the replicas of its partitions (all the same) and its min.insync.replicas."""
    # Each broker learns of a new topic a moment after CreateTopics returns, and the admin
    # client asks any one of them: ask again until the one asked knows every topic.
    async with asyncio.timeout(30):
        while True:
            replicas = {
                topic["topic"]: {len(p["replicas"]) for p in topic["partitions"]}
                for topic in await admin.describe_topics(names)
            }
            insync = {}
            for response in await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
            ):
                for resource in response.to_object()["resources"]:
                    entries = {
                        e["config_names"]: e["config_value"] for e in resource["config_entries"]
                    }
                    if "min.insync.replicas" in entries:
                        insync[resource["resource_name"]] = entries["min.insync.replicas"]
            if all(replicas.get(name) and name in insync for name in names):
                return {name: (min(replicas[name]), insync[name]) for name in names}
            await asyncio.sleep(0.1)


async def test_topics_create_gives_three_replicas_and_two_in_sync(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    names = list(settings.topics.model_dump().values())
    code, _, err = await topics_tool(settings, "create")
    assert (code, err) == (0, "")

    assert await replication(admin, names) == dict.fromkeys(names, (3, "2"))
    ok = "ok: 7 topics as planned for 3 broker(s)\n"
    assert await check_settles(settings, ok) == (0, ok, "")


async def test_the_bridge_creates_its_topics_with_three_replicas(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    names = [settings.topics.call_events, settings.topics.command_ledger]
    await ensure_topics(settings, names)

    assert await replication(admin, names) == dict.fromkeys(names, (3, "2"))


def test_local_kafka_status_names_every_node(three_brokers: str) -> None:
    result = run_local_kafka("status", "--name", three_brokers_instance(), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["state"], status["brokers"], status["bootstrap"]) == (
        "running",
        3,
        three_brokers,
    )
    assert [(n["node_id"], n["bootstrap"], n["state"]) for n in status["nodes"]] == [
        (i + 1, address, "running") for i, address in enumerate(three_brokers.split(","))
    ]
