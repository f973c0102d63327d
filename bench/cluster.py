"""A three-node ``scripts/local-kafka`` cluster under test: who leads what, and node faults.

:class:`Cluster` asks Kafka which node leads a partition and which coordinates a consumer
group, waits until every replica is back in sync, and kills, freezes, thaws, stops and starts
single nodes (through :class:`tools.local_kafka.nodes.ClusterNodes`). Metadata is asked of a
node it has not taken down itself, so a frozen node cannot stall the question.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.metadata import MetadataRequest

from tools.local_kafka.nodes import ClusterNodes

#: Where the group coordinators live (the brokers' internal topic of committed offsets).
OFFSETS_TOPIC = "__consumer_offsets"
#: FindCoordinator errors that pass: COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE.
COORDINATOR_PENDING = frozenset({14, 15})
#: Seconds a metadata question may take before another node is asked.
ASK_TIMEOUT = 5.0


class Cluster:
    """The nodes of local-kafka instance ``name``, reachable at ``bootstrap``; use as
    ``async with Cluster(name, bootstrap) as cluster``."""

    def __init__(self, name: str, bootstrap: str) -> None:
        self.nodes = ClusterNodes.load(name)
        self.bootstrap = bootstrap
        #: Nodes this object killed, stopped or froze and has not brought back.
        self.down: set[int] = set()
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="bench-cluster",
            request_timeout_ms=int(ASK_TIMEOUT * 1000),
        )

    async def __aenter__(self) -> Cluster:
        await self._admin.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._admin.close()

    @property
    def up(self) -> list[int]:
        """Node ids not taken down by this object."""
        return [n for n in self.nodes.ids if n not in self.down]

    async def _ask(self, request: Any) -> Any:
        """``request``'s answer from the first node that is up and answers."""
        errors = []
        for node_id in self.up:
            try:
                async with asyncio.timeout(ASK_TIMEOUT):
                    return await self._admin._client.send(node_id, request)
            except (KafkaError, TimeoutError) as exc:
                errors.append(f"node {node_id}: {exc!r}")
        raise KafkaError(f"no node answered {type(request).__name__}: {errors}")

    async def partitions(
        self, topics: Iterable[str], node_id: int | None = None
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """``(topic, partition)`` -> its metadata (``leader``, ``replicas``, ``isr``), as the
        first node that answers (or node ``node_id``) knows it."""
        request = MetadataRequest(list(topics))
        if node_id is None:
            answer = await self._ask(request)
        else:
            async with asyncio.timeout(ASK_TIMEOUT):
                answer = await self._admin._client.send(node_id, request)
        return {
            (topic["topic"], part["partition"]): part
            for topic in answer.to_object()["topics"]
            for part in topic["partitions"]
        }

    async def leaders(self, topic: str) -> dict[int, int]:
        """Partition -> the node leading it (-1: none)."""
        return {p: meta["leader"] for (_, p), meta in (await self.partitions([topic])).items()}

    async def coordinator(self, group: str) -> int:
        """The node coordinating consumer group ``group``; waits while the offsets topic is
        being created or loaded (the first group of a fresh cluster creates it)."""
        deadline = time.monotonic() + 60
        while True:
            answer = await self._ask(FindCoordinatorRequest(group, 0))
            if not answer.error_code:
                return int(answer.coordinator_id)
            if answer.error_code not in COORDINATOR_PENDING or time.monotonic() > deadline:
                raise KafkaError(f"FindCoordinator({group}) failed with error {answer.error_code}")
            await asyncio.sleep(0.5)

    def active_controller(self) -> int | None:
        """The node that is the active KRaft controller (None: not known yet)."""
        return self.nodes.active_controller()

    async def group_coordinated_by_other_than(self, node: int, prefix: str) -> str:
        """A fresh consumer group id (``prefix`` + a suffix) that a node other than ``node``
        coordinates (Kafka spreads groups over the offsets topic's partitions by a hash)."""
        for _ in range(64):
            group = f"{prefix}-{uuid.uuid4().hex[:6]}"
            if await self.coordinator(group) != node:
                return group
        raise KafkaError(f"every group tried is coordinated by node {node}")

    async def lag(self, group: str, topic: str) -> int:
        """Records of ``topic`` past the offsets ``group`` has committed."""
        committed = await self._admin.list_consumer_group_offsets(group)
        tps = [TopicPartition(topic, p) for p in await self.leaders(topic)]
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        return sum(
            max(0, end - (committed[tp].offset if tp in committed else 0))
            for tp, end in ends.items()
        )

    async def in_sync(self, topics: Iterable[str]) -> bool:
        """True when, as every node that is up knows it, every partition of ``topics`` and of
        the offsets topic has a leader and every replica in sync (a node just thawed still
        knows the cluster as it was when it froze)."""
        names = [*topics, OFFSETS_TOPIC]
        for node_id in self.up:
            parts = await self.partitions(names, node_id)
            if not parts or not all(
                meta["error_code"] == 0
                and meta["leader"] >= 0
                and set(meta["isr"]) == set(meta["replicas"])
                for meta in parts.values()
            ):
                return False
        return True

    async def wait_in_sync(self, topics: Iterable[str], timeout: float = 120.0) -> float:  # noqa: ASYNC109
        """Until :meth:`in_sync`; the seconds it took. ``TimeoutError`` after ``timeout``."""
        names = list(topics)
        began = time.monotonic()
        async with asyncio.timeout(timeout):
            while True:
                try:
                    if await self.in_sync(names):
                        return time.monotonic() - began
                except (KafkaError, TimeoutError):
                    pass  # a node did not answer: the cluster is still settling
                await asyncio.sleep(0.25)

    async def kill(self, node_id: int) -> None:
        """SIGKILL node ``node_id``."""
        self.down.add(node_id)
        await asyncio.to_thread(self.nodes.kill, node_id)

    async def stop(self, node_id: int) -> None:
        """SIGTERM node ``node_id`` and wait until it has shut down."""
        self.down.add(node_id)
        await asyncio.to_thread(self.nodes.stop, node_id)

    def freeze(self, node_id: int) -> None:
        """SIGSTOP node ``node_id``."""
        self.down.add(node_id)
        self.nodes.freeze(node_id)

    def thaw(self, node_id: int) -> None:
        """SIGCONT node ``node_id``."""
        self.nodes.thaw(node_id)
        self.down.discard(node_id)

    async def start(self, node_id: int) -> None:
        """Start node ``node_id`` again (if it does not run) and wait until it answers."""
        await asyncio.to_thread(self.nodes.start, node_id)
        self.down.discard(node_id)

    async def restore(self) -> None:
        """Every node running and answering again: thaw the frozen, start the stopped."""
        for node_id in list(self.down):
            if self.nodes.pid(node_id) is not None:
                self.thaw(node_id)
            else:
                await self.start(node_id)
