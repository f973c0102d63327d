"""Strimzi KafkaTopics (`kafkaTopics.enabled`): the bridge's own topic plan, as a cluster run by
the Strimzi operator takes it.

The chart's template keeps each topic's cleanup policy and default name; everything else comes
from the values that configure the bridge. Each case renders the chart, gives the bridge the
rendered ConfigMap as its environment, and compares the KafkaTopics with what
`fonestorm-bridge topics show --brokers N --json` plans: a topic or a config added to
bridge/kafka/topic_plan.py fails here until the chart has it too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import DEFAULT, FULL, configmap_data, values_of
from tests.chart.helmlib import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    REPO_ROOT,
    Helm,
    HelmError,
    Manifest,
    of_kind,
)

ENABLED = ["kafkaTopics.enabled=true", "kafkaTopics.cluster=prod-kafka"]

#: (values beyond DEFAULT and ENABLED, the brokers the plan is made for)
CASES: dict[str, tuple[dict[str, Any], int]] = {
    "defaults (three brokers)": ({}, 3),
    "one broker": ({"kafkaTopics": {"brokers": 1}}, 1),
    "two brokers": ({"kafkaTopics": {"brokers": 2}}, 2),
    "five brokers": ({"kafkaTopics": {"brokers": 5}}, 5),
    "names and partitions": (
        {
            "config": {
                "topics": {"callEvents": "Acme_Call_Events", "commandLedger": "acme.ledger"},
                "kafka": {"topicPartitions": 12},
            }
        },
        3,
    ),
    "replication and min.insync.replicas set": (
        {
            "kafkaTopics": {"brokers": 5},
            "config": {"kafka": {"topicReplicationFactor": 2, "topicMinInsyncReplicas": 1}},
        },
        5,
    ),
    "min.insync.replicas on fewer than three replicas": (
        {"kafkaTopics": {"brokers": 2}, "config": {"kafka": {"topicMinInsyncReplicas": 2}}},
        2,
    ),
    "ledger retention": ({"config": {"worker": {"ledgerRetention": 3600.5}}}, 3),
}


def _plan(data: dict[str, str], brokers: int) -> list[dict[str, Any]]:
    """`fonestorm-bridge topics show --json` with the rendered ConfigMap as the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env |= data | {"PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "topics", "show", "--brokers", str(brokers), "--json"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines()]


def _as_planned(topic: Manifest) -> dict[str, Any]:
    spec = topic["spec"]
    return {
        "topic": spec["topicName"],
        "partitions": spec["partitions"],
        "replication_factor": spec["replicas"],
        "configs": spec["config"],
    }


def _by_topic(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["topic"]: entry for entry in entries}


@pytest.mark.parametrize(("extra", "brokers"), CASES.values(), ids=CASES.keys())
def test_kafka_topics_are_the_bridges_plan(
    helm: Helm, tmp_path: Path, extra: dict[str, Any], brokers: int
) -> None:
    values = tmp_path / "case-values.yaml"
    values.write_text(yaml.safe_dump(extra), encoding="utf-8")
    manifests = helm.template(DEFAULT, values, set_values=ENABLED)
    topics = of_kind(manifests, "KafkaTopic")
    planned = _plan(configmap_data(manifests), brokers)
    assert _by_topic([_as_planned(t) for t in topics]) == _by_topic(planned)
    assert len(topics) == len(planned)


def test_full_values_add_extra_config_to_the_plan(helm: Helm) -> None:
    manifests = helm.template(FULL)
    topics = {t["spec"]["topicName"]: t for t in of_kind(manifests, "KafkaTopic")}
    planned = _by_topic(_plan(configmap_data(manifests), values_of(FULL)["kafkaTopics"]["brokers"]))
    events = "telephony.call-events.v1"
    extra = {"retention.ms": "1209600000"}
    assert topics[events]["spec"]["config"] == {**planned[events]["configs"], **extra}
    for name, topic in topics.items():
        if name != events:
            assert _as_planned(topic) == planned[name]
        assert topic["metadata"]["labels"]["team"] == "telephony"
        assert topic["metadata"]["annotations"]["example.com/owner"] == "telephony"


def test_not_rendered_by_default(helm: Helm) -> None:
    assert not of_kind(helm.template(DEFAULT), "KafkaTopic")


def test_metadata(helm: Helm) -> None:
    topics = of_kind(helm.template(DEFAULT, set_values=ENABLED), "KafkaTopic")
    assert topics
    for topic in topics:
        metadata = topic["metadata"]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1"
        assert metadata["namespace"] == NAMESPACE
        assert metadata["labels"]["strimzi.io/cluster"] == "prod-kafka"
        assert metadata["labels"]["app.kubernetes.io/instance"] == RELEASE
        # Uninstalling the release must not delete the topics and their records.
        assert metadata["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert metadata["name"] == topic["spec"]["topicName"]


def test_names_fit_kubernetes_and_options(helm: Helm) -> None:
    topics = of_kind(
        helm.template(
            DEFAULT,
            set_values=[
                *ENABLED,
                "config.topics.callEvents=Acme_Call_Events",
                "kafkaTopics.keep=false",
                "kafkaTopics.apiVersion=kafka.strimzi.io/v1beta2",
                "kafkaTopics.namespace=kafka",
                "kafkaTopics.labels.strimzi\\.io/cluster=other",
            ],
        ),
        "KafkaTopic",
    )
    [events] = [t for t in topics if t["spec"]["topicName"] == "Acme_Call_Events"]
    assert events["metadata"]["name"] == "acme-call-events"
    for topic in topics:
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["namespace"] == "kafka"
        assert "annotations" not in topic["metadata"]
        # The cluster is `cluster`, whatever `labels` says.
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "prod-kafka"


def test_extra_config_cannot_override_the_plan(helm: Helm) -> None:
    with pytest.raises(HelmError, match=r"kafkaTopics\.extraConfig\.commandLedger: retention\.ms"):
        helm.template(
            DEFAULT,
            set_values=ENABLED,
            set_strings=["kafkaTopics.extraConfig.commandLedger.retention\\.ms=1"],
        )


BAD = {
    "enabled without a cluster": ["--set", "kafkaTopics.enabled=true"],
    "a number as a config": ["--set", "kafkaTopics.extraConfig.callEvents.retention\\.ms=5"],
    "a topic key the bridge does not have": [
        "--set-string", "kafkaTopics.extraConfig.events.retention\\.ms=5",
    ],
    "an unknown API version": ["--set", "kafkaTopics.apiVersion=kafka.strimzi.io/v2"],
    "no brokers": ["--set", "kafkaTopics.brokers=0"],
}  # fmt: skip


@pytest.mark.parametrize("args", BAD.values(), ids=BAD.keys())
def test_schema_refuses(helm: Helm, args: list[str]) -> None:
    with pytest.raises(HelmError, match="values don't meet the specifications of the schema"):
        helm.run("template", RELEASE, str(CHART_DIR), "--values", str(DEFAULT), *args)


def test_chart_readme_says_how() -> None:
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    assert "kafkaTopics.enabled" in readme
    assert "fonestorm-bridge topics show" in readme
