"""One node of a running `start --brokers N` instance at a time: its pid, signals, a restart.

For failover tests and benchmarks: SIGKILL a node, freeze it (SIGSTOP) and thaw it (SIGCONT),
start it again on its own data. What the node does in the cluster (which partitions it leads,
which groups it coordinates) is Kafka's business and is asked of Kafka (``bench.cluster``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass

from tools.local_kafka.common import HOST, LocalKafkaError
from tools.local_kafka.config import InstanceConfig, Node
from tools.local_kafka.jars import ensure_jars
from tools.local_kafka.launch import spawn
from tools.local_kafka.paths import InstancePaths, instance_paths, kafka_version, logs_tail
from tools.local_kafka.probe import probe_broker
from tools.local_kafka.process import pid_alive, reap, running_pid, terminate
from tools.local_kafka.state import load_config


@dataclass(frozen=True)
class ClusterNodes:
    """The nodes of local-kafka instance ``name`` (started with ``--brokers N``)."""

    config: InstanceConfig
    paths: InstancePaths

    @classmethod
    def load(cls, name: str) -> ClusterNodes:
        """The instance ``name`` as its state file describes it."""
        config = load_config(name)
        if config is None:
            raise LocalKafkaError(f"instance '{name}' was never started")
        return cls(config, instance_paths(name))

    @property
    def ids(self) -> list[int]:
        """Node ids, in order (1..N)."""
        return [node.node_id for node in self.config.nodes]

    def node(self, node_id: int) -> Node:
        for node in self.config.nodes:
            if node.node_id == node_id:
                return node
        raise LocalKafkaError(f"instance '{self.config.name}' has no node {node_id}")

    def _paths(self, node_id: int) -> InstancePaths:
        return self.paths.node(node_id, self.config.brokers)

    def pid(self, node_id: int) -> int | None:
        """The pid of node ``node_id`` while it runs (frozen counts as running)."""
        return running_pid(self._paths(node_id))

    def _signal(self, node_id: int, signum: signal.Signals) -> int:
        pid = self.pid(node_id)
        if pid is None:
            raise LocalKafkaError(f"node {node_id} of '{self.config.name}' is not running")
        os.kill(pid, signum)
        return pid

    def kill(self, node_id: int) -> None:
        """SIGKILL node ``node_id`` and wait until it is gone (its sockets closed)."""
        pid = self._signal(node_id, signal.SIGKILL)
        while pid_alive(pid):
            reap(pid)
            time.sleep(0.02)
        reap(pid)  # it may have died after the last one
        self._paths(node_id).pid_file.unlink(missing_ok=True)

    def freeze(self, node_id: int) -> None:
        """SIGSTOP node ``node_id``: its sockets stay open and nothing answers on them."""
        self._signal(node_id, signal.SIGSTOP)

    def thaw(self, node_id: int) -> None:
        """SIGCONT node ``node_id``."""
        self._signal(node_id, signal.SIGCONT)

    def stop(self, node_id: int, grace: float = 60.0) -> None:
        """SIGTERM node ``node_id`` (a controlled shutdown: it hands its leaderships over)."""
        pid = self.pid(node_id)
        if pid is not None:
            terminate(pid, grace=grace)
        self._paths(node_id).pid_file.unlink(missing_ok=True)

    def start(self, node_id: int, timeout: float = 90.0) -> None:
        """Start node ``node_id`` again on its data; return once it answers and lists the
        other nodes. A node that runs is left alone."""
        if self.pid(node_id) is not None:
            return
        node = self.node(node_id)
        child = spawn(ensure_jars(kafka_version()), self._paths(node_id))
        deadline = time.monotonic() + timeout
        while (reason := self.probe(node_id)) is not None:
            if child.poll() is not None or time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                raise LocalKafkaError(
                    f"node {node_id} did not come back on {node.address}: {reason}",
                    log_tail=logs_tail(self._paths(node_id)),
                )
            time.sleep(0.2)

    def active_controller(self) -> int | None:
        """The node the KRaft quorum's newest leader epoch names, as the nodes' ``quorum-state``
        files record it (None: none has recorded a leader yet)."""
        newest: tuple[int, int] | None = None
        for node_id in self.ids:
            state = self._paths(node_id).data / "__cluster_metadata-0" / "quorum-state"
            try:
                recorded = json.loads(state.read_text())
            except (OSError, ValueError):
                continue  # not written yet, or being rewritten
            epoch, leader = int(recorded.get("leaderEpoch", -1)), int(recorded.get("leaderId", -1))
            if leader >= 0 and (newest is None or epoch > newest[0]):
                newest = (epoch, leader)
        return None if newest is None else newest[1]

    def probe(self, node_id: int) -> str | None:
        """None when node ``node_id`` answers Kafka requests and lists every node, else why not."""
        node = self.node(node_id)
        return probe_broker((HOST, node.port), node_id=node_id, brokers=self.config.brokers)
