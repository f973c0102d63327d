"""`fonestorm-bridge topics show|create|check` against a real broker: the plan's topics are
created with their configs, then found as planned, and a changed config is reported as drift."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bridge.kafka.topic_admin import describe_topics
from bridge.kafka.topics import ensure_topics
from bridge.settings import Settings
from tests.support.topics import check_settles, fresh_topics, topics_tool

pytestmark = pytest.mark.integration


@pytest.fixture
async def settings(kafka_bootstrap: str, admin: AIOKafkaAdminClient) -> AsyncIterator[Settings]:
    """Settings naming fresh topics (none exists yet); they are deleted after the test."""
    kafka = {"bootstrap_servers": kafka_bootstrap, "topic_partitions": 2}
    async with fresh_topics(
        admin, "plan", kafka=kafka, worker={"ledger_retention": 3600}
    ) as config:
        yield config


async def test_create_then_check_then_a_changed_config_is_drift(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    names = list(settings.topics.model_dump().values())
    ledger = settings.topics.command_ledger

    code, out, err = await topics_tool(settings, "check")
    assert (code, err) == (1, "")
    assert sorted(out.splitlines()) == sorted(f"missing {name}" for name in names)

    code, out, err = await topics_tool(settings, "create")
    assert (code, err) == (0, "")
    assert sorted(out.splitlines()) == sorted(f"created {name}" for name in names)
    # Each broker learns of a new topic a moment after CreateTopics returns; any may answer.
    async with asyncio.timeout(30):
        while len(states := await describe_topics(admin, names)) < len(names):
            await asyncio.sleep(0.1)
    brokers = len((await admin.describe_cluster())["brokers"])
    replicas = min(3, brokers)
    assert {(s.partitions, s.replication_factor) for s in states.values()} == {(2, replicas)}
    assert states[ledger].configs["cleanup.policy"] == "compact,delete"
    assert states[ledger].configs["retention.ms"] == "3600000"
    assert states[settings.topics.dead_letter_replays].configs["cleanup.policy"] == "compact"

    ok = f"ok: 7 topics as planned for {brokers} broker(s)\n"
    assert await check_settles(settings, ok) == (0, ok, "")
    code, out, _ = await topics_tool(settings, "create")
    assert (code, sorted(out.splitlines())) == (0, sorted(f"exists  {name}" for name in names))

    # An operator turns the ledger's compaction off and shortens the events' retention: the
    # latter is not in the plan, so only the former is drift. (AlterConfigs replaces a topic's
    # whole config set.)
    changed = {"cleanup.policy": "delete", "retention.ms": "3600000"}
    changed["min.compaction.lag.ms"] = "3600000"
    events = {"cleanup.policy": "delete", "retention.ms": "60000"}
    await admin.alter_configs(
        [
            ConfigResource(ConfigResourceType.TOPIC, ledger, changed),
            ConfigResource(ConfigResourceType.TOPIC, settings.topics.call_events, events),
        ]
    )
    drifted = f"drift   {ledger}: cleanup.policy is delete, the plan wants compact,delete\n"
    assert await check_settles(settings, drifted) == (1, drifted, "")


async def test_the_bridge_creates_its_topics_from_the_plan(settings: Settings) -> None:
    allowed = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"create_topics": True})}
    )
    created = [allowed.topics.command_ledger, allowed.topics.call_events]
    await ensure_topics(allowed, created)

    # Exactly the two it was asked for exist, and as planned.
    names = settings.topics.model_dump().values()
    missing = "".join(f"missing {name}\n" for name in names if name not in created)
    assert await check_settles(settings, missing) == (1, missing, "")


async def test_show_prints_the_plan_for_the_cluster_found(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    brokers = len((await admin.describe_cluster())["brokers"])
    code, out, err = await topics_tool(settings, "show")
    assert (code, err) == (0, "")
    ledger = next(line for line in out.splitlines() if settings.topics.command_ledger in line)
    insync = "min.insync.replicas=2," if brokers >= 3 else ""
    assert ledger.split() == [
        settings.topics.command_ledger,
        "partitions=2",
        f"replication_factor={min(3, brokers)}",
        f"cleanup.policy=compact,delete,min.compaction.lag.ms=3600000,{insync}retention.ms=3600000",
    ]
    code, out, _ = await topics_tool(settings, "show", "--brokers", "3")
    assert code == 0
    assert all("replication_factor=3" in line for line in out.splitlines())
    assert all("min.insync.replicas=2" in line for line in out.splitlines())


async def test_kafka_unreachable_is_exit_3(settings: Settings) -> None:
    unreachable = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap_servers": "127.0.0.1:1", "request_timeout_ms": 2000}
            )
        }
    )
    code, out, err = await topics_tool(unreachable, "check")
    assert (code, out) == (3, "")
    assert err.startswith("fonestorm-bridge: Kafka: ")
