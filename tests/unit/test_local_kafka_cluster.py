"""scripts/local-kafka --brokers N without a broker: ports, server.properties and saved state."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.local_kafka import start_args
from tools.local_kafka.common import LocalKafkaError
from tools.local_kafka.config import server_properties
from tools.local_kafka.paths import instance_paths
from tools.local_kafka.state import load_config, resolve_config, save_state


@pytest.fixture(autouse=True)
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("BRIDGE_KAFKA_STATE", str(tmp_path))
    return tmp_path


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))


@pytest.mark.parametrize(
    ("brokers", "replication", "min_insync"), [(None, "1", "1"), (2, "2", "1"), (3, "3", "2")]
)
def test_replication_of_internal_and_default_topics(
    brokers: int | None, replication: str, min_insync: str
) -> None:
    config = resolve_config(start_args(brokers=brokers))
    rendered = props(server_properties(config, instance_paths("unit")))
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert rendered[key] == replication
    assert rendered["min.insync.replicas"] == min_insync
    assert rendered["transaction.state.log.min.isr"] == min_insync


def test_three_nodes_one_quorum_each_its_own_ports_and_folder() -> None:
    config = resolve_config(start_args(brokers=3))
    assert config.bootstrap == "127.0.0.1:19000,127.0.0.1:19001,127.0.0.1:19002"
    assert config.ports == [19000, 19003, 19001, 19004, 19002, 19005]
    paths = instance_paths("unit")
    node = config.nodes[1]
    node_paths = paths.node(node.node_id, config.brokers)
    rendered = props(server_properties(config, node_paths, node))
    assert rendered["node.id"] == "2"
    assert rendered["controller.quorum.voters"] == (
        "1@127.0.0.1:19003,2@127.0.0.1:19004,3@127.0.0.1:19005"
    )
    assert rendered["listeners"] == "PLAINTEXT://127.0.0.1:19001,CONTROLLER://127.0.0.1:19004"
    assert rendered["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19001"
    assert rendered["log.dirs"] == str(paths.root / "node-2" / "data")
    # A single broker keeps its files where they always were.
    assert paths.node(1, 1) == paths


def test_a_cluster_is_remembered_and_reused() -> None:
    config = resolve_config(start_args(brokers=3, controller_port=19100))
    paths = instance_paths("unit")
    paths.root.mkdir(parents=True)
    save_state(paths, config, None)
    loaded = load_config("unit")
    assert loaded == config
    assert loaded.brokers == 3
    # A plain restart keeps the nodes and their ports.
    assert resolve_config(start_args(port=None)) == config


@pytest.mark.parametrize(
    "overrides",
    [{"brokers": 3, "ssl_port": 19010}, {"brokers": 3, "controller_port": 19002}, {"brokers": 0}],
)
def test_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(LocalKafkaError):
        resolve_config(start_args(**overrides))


def test_overrides_replace_defaults_and_survive_a_restart() -> None:
    config = resolve_config(
        start_args(brokers=3, override=["broker.session.timeout.ms=3000", "num.io.threads=2"])
    )
    text = server_properties(config, instance_paths("unit"))
    assert text.count("num.io.threads=") == 1
    rendered = props(text)
    assert rendered["broker.session.timeout.ms"] == "3000"
    assert rendered["num.io.threads"] == "2"
    instance_paths("unit").root.mkdir(parents=True)
    save_state(instance_paths("unit"), config, None)
    again = resolve_config(start_args(port=None, brokers=None))
    assert again.overrides == (("broker.session.timeout.ms", "3000"), ("num.io.threads", "2"))


@pytest.mark.parametrize("item", ["no-equals-sign", "=3000"])
def test_an_override_without_a_key_is_refused(item: str) -> None:
    with pytest.raises(LocalKafkaError, match="KEY=VALUE"):
        resolve_config(start_args(override=[item]))
