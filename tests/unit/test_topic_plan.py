"""The topic plan (every topic with its configs, fitted to the cluster) and its drift check."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.kafka.topic_plan import (
    Drift,
    TopicSpec,
    TopicState,
    drift,
    plan_drift,
    plan_for,
    topic_plan,
)
from bridge.settings import Settings


def settings(**kafka: Any) -> Settings:
    return Settings(kafka=kafka)


@pytest.mark.parametrize(
    ("brokers", "kafka", "replicas", "insync"),
    [
        (1, {}, 1, None),
        (2, {}, 2, None),
        (3, {}, 3, "2"),
        (5, {}, 3, "2"),
        (5, {"topic_replication_factor": 5}, 5, "2"),
        (3, {"topic_replication_factor": 2}, 2, None),
        (1, {"topic_min_insync_replicas": 1}, 1, "1"),
        (3, {"topic_min_insync_replicas": 3}, 3, "3"),
    ],
)
def test_replication_fits_the_cluster_unless_configured(
    brokers: int, kafka: dict[str, Any], replicas: int, insync: str | None
) -> None:
    plan = topic_plan(settings(**kafka), brokers)
    assert {spec.replication_factor for spec in plan} == {replicas}
    assert {spec.configs.get("min.insync.replicas") for spec in plan} == {insync}


def test_every_topic_the_bridge_uses_is_planned_once() -> None:
    config = Settings()
    names = [spec.name for spec in topic_plan(config, 3)]
    assert sorted(names) == sorted(config.topics.model_dump().values())


def test_configs_per_topic() -> None:
    config = Settings(worker={"ledger_retention": 86400}, kafka={"topic_partitions": 4})
    plan = {spec.name: spec for spec in topic_plan(config, 1)}
    topics = config.topics
    assert {name: dict(spec.configs) for name, spec in plan.items()} == {
        topics.call_events: {"cleanup.policy": "delete"},
        topics.dead_letters: {"cleanup.policy": "delete"},
        topics.dead_letter_replays: {"cleanup.policy": "compact"},
        topics.dead_letter_audit: {"cleanup.policy": "delete"},
        topics.place_call: {"cleanup.policy": "delete"},
        topics.place_call_results: {"cleanup.policy": "delete"},
        topics.command_ledger: {
            "cleanup.policy": "compact,delete",
            "retention.ms": "86400000",
            "min.compaction.lag.ms": "3600000",
        },
    }
    assert {spec.partitions for spec in plan.values()} == {4}


def test_a_topic_outside_the_plan_gets_the_plain_spec() -> None:
    config = settings()
    ledger = config.topics.command_ledger
    specs = plan_for(config, 3, ["bench-topic", ledger])
    assert specs[0] == TopicSpec("bench-topic", 6, 3, {"min.insync.replicas": "2"})
    assert specs[1].name == ledger
    assert specs[1].configs["cleanup.policy"] == "compact,delete"


SPEC = TopicSpec("t", 6, 3, {"cleanup.policy": "compact,delete", "min.insync.replicas": "2"})
AS_PLANNED = {"cleanup.policy": "compact,delete", "min.insync.replicas": "2", "segment.ms": "1"}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (TopicState("t", 6, 3, AS_PLANNED), []),
        # Set-valued configs compare as sets.
        (TopicState("t", 6, 3, {**AS_PLANNED, "cleanup.policy": "delete, compact"}), []),
        (TopicState("t", 3, 3, AS_PLANNED), [Drift("t", "partitions", "6", "3")]),
        (TopicState("t", 12, 3, AS_PLANNED), [Drift("t", "partitions", "6", "12")]),
        (TopicState("t", 6, 1, AS_PLANNED), [Drift("t", "replication factor", "3", "1")]),
        (
            TopicState("t", 6, 3, {**AS_PLANNED, "cleanup.policy": "delete"}),
            [Drift("t", "cleanup.policy", "compact,delete", "delete")],
        ),
        (
            TopicState("t", 6, 3, {"cleanup.policy": "compact,delete"}),
            [Drift("t", "min.insync.replicas", "2", "unset")],
        ),
        (
            TopicState("t", 1, 1, {"min.insync.replicas": "1"}),
            [
                Drift("t", "partitions", "6", "1"),
                Drift("t", "replication factor", "3", "1"),
                Drift("t", "cleanup.policy", "compact,delete", "unset"),
                Drift("t", "min.insync.replicas", "2", "1"),
            ],
        ),
    ],
)
def test_drift(state: TopicState, expected: list[Drift]) -> None:
    assert drift(SPEC, state) == expected


def test_plan_drift_splits_missing_from_drifted() -> None:
    plan = [TopicSpec("a", 1, 1), TopicSpec("b", 2, 1), TopicSpec("c", 1, 1)]
    existing = {"b": TopicState("b", 1, 1), "c": TopicState("c", 1, 1), "x": TopicState("x", 9, 9)}
    assert plan_drift(plan, existing) == (["a"], [Drift("b", "partitions", "2", "1")])


def test_drift_reads_as_a_sentence() -> None:
    line = str(Drift("t", "replication factor", "3", "1"))
    assert line == "t: replication factor is 1, the plan wants 3"
