"""In-memory Kafka for the protocol simulation: topics, a producer, a follower, a consumer group.

Each piece is what the worker's real code talks to, shrunk to memory: :class:`SimPublisher` is a
:class:`~bridge.kafka.publisher.Publisher`, :class:`SimFollower` stands where the ledger's
:class:`~bridge.kafka.follower.TopicFollower` does, :class:`SimConsumer` answers the calls
:class:`~bridge.commands.worker.CommandWorker` makes of an ``AIOKafkaConsumer``, and
:class:`SimGroup` runs the eager rebalance protocol with generations, session timeouts and
members that stop answering. Every call of a member waits on its :class:`Process`: a frozen
process (SIGSTOP) does nothing until thawed, as a real one would.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, RecordMetadata

from bridge.errors import PublishError
from bridge.kafka.partitioner import partition_for
from bridge.kafka.publisher import Headers, Publisher
from bridge.obs.metrics import Metrics
from bridge.settings import KafkaSettings

Record = ConsumerRecord[bytes, bytes]
#: Wall-clock seconds of virtual time 0: record timestamps look like today's.
EPOCH = 1_796_000_000.0


class Process:
    """One simulated OS process: its I/O waits while it is frozen, and takes random time."""

    def __init__(
        self, name: str, rng: random.Random, *, latency: float = 0.004, newer: bool = False
    ) -> None:
        self.name = name
        self.rng = rng
        #: A newer version of the bridge: its ledger entries carry fields older ones lack.
        self.newer = newer
        self.latency = latency
        self.awake = asyncio.Event()
        self.awake.set()
        self.dead = False

    async def io(self) -> None:
        """One round trip: waits while frozen, before and after the time on the wire."""
        await self.awake.wait()
        await asyncio.sleep(self.rng.uniform(0, 2 * self.latency))
        await self.awake.wait()

    def freeze(self) -> None:
        self.awake.clear()

    def thaw(self) -> None:
        if not self.dead:
            self.awake.set()

    def kill(self) -> None:
        """SIGKILL: frozen for ever (nothing of it runs again, no cleanup)."""
        self.dead = True
        self.awake.clear()


class Broker:
    """Topics as lists of partitions of records; readers wait for :meth:`changed`."""

    def __init__(self) -> None:
        self.topics: dict[str, list[list[Record]]] = {}
        self._changed = asyncio.Event()
        self.on_append: list[Callable[[Record], None]] = []

    def create(self, topic: str, partitions: int) -> None:
        self.topics[topic] = [[] for _ in range(partitions)]

    def partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(len(self.topics[topic]))]

    def grow(self, topic: str, partitions: int) -> None:
        """``kafka-topics --alter --partitions``: new, empty partitions after the others."""
        self.topics[topic] += [[] for _ in range(partitions)]

    def append(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None,
        headers: Headers = (),
        partition: int | None = None,
        timestamp: float | None = None,
    ) -> RecordMetadata:
        """``timestamp``: the record's CreateTime (epoch seconds) when not the broker's now."""
        parts = self.topics[topic]
        if partition is None:
            ids = list(range(len(parts)))
            partition = partition_for(key, ids, ids)
        log = parts[partition]
        if timestamp is None:
            timestamp = EPOCH + asyncio.get_running_loop().time()
        stamp = int(timestamp * 1000)
        record = ConsumerRecord(
            topic, partition, len(log), stamp, 0, key, value, None,
            len(key or b""), len(value or b""), tuple(headers),
        )  # fmt: skip
        log.append(record)
        for callback in self.on_append:
            callback(record)
        self._changed.set()
        self._changed = asyncio.Event()
        return RecordMetadata(topic, partition, TopicPartition(topic, partition), record.offset,
                              stamp, 0, 0)  # fmt: skip

    def end(self, tp: TopicPartition) -> int:
        return len(self.topics[tp.topic][tp.partition])

    def read(self, tp: TopicPartition, offset: int, limit: int) -> list[Record]:
        return self.topics[tp.topic][tp.partition][offset : offset + limit]

    async def changed(self, timeout: float) -> None:
        """Until the next append, or ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            pass


class SimPublisher(Publisher):
    """The real publisher's interface over :class:`Broker`; some produces fail, some of those
    after the record landed (an acknowledgement lost on the way back)."""

    def __init__(
        self,
        broker: Broker,
        process: Process,
        *,
        failure_rate: float = 0.0,
        ledger_topic: str = "",
    ) -> None:
        super().__init__(KafkaSettings(), Metrics())
        self._broker = broker
        self._process = process
        self._failure_rate = failure_rate
        self._ledger_topic = ledger_topic
        self._ready = True
        # Partitions per topic as this producer's metadata has them: refreshed now and then,
        # so producers disagree for a while after partitions were added.
        self._known: dict[str, int] = {}
        self._refresh_at = 0.0

    def _partition(self, topic: str, key: bytes | None) -> int:
        now = asyncio.get_running_loop().time()
        if now >= self._refresh_at or topic not in self._known:
            self._known = {t: len(parts) for t, parts in self._broker.topics.items()}
            self._refresh_at = now + self._process.rng.uniform(1, 10)
        ids = list(range(self._known[topic]))
        return partition_for(key, ids, ids)

    async def publish(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()
    ) -> RecordMetadata:
        await self._process.io()
        rng = self._process.rng
        if self._process.newer and topic == self._ledger_topic:
            value = _newer(value)
        partition = self._partition(topic, key)
        if rng.random() < self._failure_rate:
            if rng.random() < 0.5:
                self._broker.append(topic, value, key=key, headers=headers, partition=partition)
            raise PublishError("simulated: Kafka did not acknowledge in time")
        metadata = self._broker.append(topic, value, key=key, headers=headers, partition=partition)
        await self._process.io()
        return metadata


class SimFollower:
    """Reads every partition of a topic into ``apply``, as the ledger's follower does."""

    def __init__(
        self,
        broker: Broker,
        process: Process,
        topic: str,
        apply: Callable[[Record], None],
        on_batch: Callable[[], None],
    ) -> None:
        self._broker, self._process, self._topic = broker, process, topic
        self._apply, self._on_batch = apply, on_batch
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_check = 0.0

    @property
    def following(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def partitions(self) -> list[TopicPartition]:
        return list(self._positions)

    async def start(self) -> None:
        await self._process.io()
        self._positions = dict.fromkeys(self._broker.partitions(self._topic), 0)
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _look_for_added(self) -> None:
        """What the real follower does every few seconds: follow new partitions from 0."""
        self._next_check = asyncio.get_running_loop().time() + 5.0
        for tp in self._broker.partitions(self._topic):
            self._positions.setdefault(tp, 0)

    async def follow_added(self) -> None:
        await self._process.io()
        self._look_for_added()

    async def _follow(self) -> None:
        while True:
            await self._process.io()
            if asyncio.get_running_loop().time() >= self._next_check:
                self._look_for_added()
            for tp, position in list(self._positions.items()):
                records = self._broker.read(tp, position, 50)
                for record in records:
                    self._apply(record)
                self._positions[tp] = position + len(records)
            self._on_batch()
            self._progress.set()
            self._progress = asyncio.Event()
            if all(self._broker.end(tp) == p for tp, p in self._positions.items()):
                await self._broker.changed(0.2)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        await self._process.io()
        return {tp: self._broker.end(tp) for tp in self._positions}

    async def wait_for(self, ends: dict[TopicPartition, int]) -> None:
        while not all(self._positions.get(tp, -1) >= end for tp, end in ends.items()):
            await self._progress.wait()

    async def catch_up(self) -> None:
        await self.wait_for(await self.end_offsets())

    async def record_at(self, partition: int, offset: int) -> Record | None:
        await self._process.io()
        found = self._broker.read(TopicPartition(self._topic, partition), offset, 1)
        return found[0] if found else None


class SimGroup:
    """One consumer group: eager rebalances, generations, session and rebalance timeouts."""

    def __init__(
        self, broker: Broker, topic: str, *, session_timeout: float, rebalance_timeout: float
    ) -> None:
        self._broker = broker
        self._topic = topic
        self.session_timeout = session_timeout
        self.rebalance_timeout = rebalance_timeout
        self.generation = 0
        self.members: list[SimConsumer] = []
        self.committed: dict[TopicPartition, int] = {}
        self.rebalancing = False
        self.note: Callable[[str], None] = lambda event: None
        self._lock = asyncio.Lock()
        self._monitor: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._monitor = asyncio.create_task(self._expire_sessions())

    async def join(self, member: SimConsumer) -> None:
        if member not in self.members:
            self.members.append(member)
        await self.rebalance()

    async def leave(self, member: SimConsumer) -> None:
        if member in self.members:
            self.members.remove(member)
            await self.rebalance()

    def current(self, member: SimConsumer) -> bool:
        """Whether ``member`` is in the group in the generation it was last given."""
        return member in self.members and member.generation == self.generation

    def answer(self, member: SimConsumer, generation: int) -> int:
        """The error code of a Heartbeat or SyncGroup sent by ``member`` in ``generation``."""
        if member not in self.members:
            return UNKNOWN_MEMBER_ID
        if self.rebalancing:
            # Also a member still joining: the group keeps it while the rebalance lasts.
            return REBALANCE_IN_PROGRESS
        return ILLEGAL_GENERATION if generation != self.generation else 0

    async def _expire_sessions(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = asyncio.get_running_loop().time()
            expired = [m for m in self.members if now - m.heartbeat > self.session_timeout]
            if expired:
                for member in expired:
                    self.members.remove(member)
                await self.rebalance()

    async def rebalance(self) -> None:
        async with self._lock:
            self.rebalancing = True
            # Members rejoin after revoking what they had; one that does not within the
            # rebalance timeout is left out (its process may still think it owns them).
            rejoining = list(self.members)
            joined = await asyncio.gather(*(self._rejoin(m) for m in rejoining))
            left_out = {m for m, ok in zip(rejoining, joined, strict=True) if not ok}
            # Members that joined meanwhile wait for the next rebalance, which they started.
            self.members = [m for m in self.members if m in rejoining and m not in left_out]
            partitions = self._broker.partitions(self._topic)
            shares: dict[SimConsumer, list[TopicPartition]] = {m: [] for m in self.members}
            for i, tp in enumerate(partitions):
                if self.members:
                    shares[self.members[i % len(self.members)]].append(tp)
            # The old generation ends here: until now its members could still commit.
            self.generation += 1
            self.rebalancing = False
            for member, share in shares.items():
                member.assigned_in(self.generation, share, self.committed)
            self.note(
                f"generation {self.generation}: "
                + ", ".join(
                    f"{m.process.name} {[tp.partition for tp in s]}" for m, s in shares.items()
                )
                + (f" ({', '.join(m.process.name for m in left_out)} left out)" if left_out else "")
            )
            # Each member learns its share from SyncGroup's answer, in its own time (a frozen
            # one when it resumes): the group does not wait for that.
            for member, share in shares.items():
                member.assigning = asyncio.create_task(member.take(share))

    async def _rejoin(self, member: SimConsumer) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.rebalance_timeout
        if not member.process.awake.is_set():
            deadline = min(deadline, member.heartbeat + self.session_timeout)
        try:
            async with asyncio.timeout_at(deadline):
                await member.process.awake.wait()
        except TimeoutError:
            return False
        # The member revokes in its own task; the group waits for it no longer than the
        # rebalance timeout (the worker's revoke budget stays under it), then goes on without.
        revoking = asyncio.create_task(member.revoke_all())
        done, _ = await asyncio.wait({revoking}, timeout=max(0.0, deadline - loop.time()))
        return bool(done)


class SimConsumer:
    """The ``AIOKafkaConsumer`` calls of the worker, against :class:`SimGroup` and the broker."""

    def __init__(
        self,
        broker: Broker,
        group: SimGroup,
        process: Process,
        listener: ConsumerRebalanceListener | None = None,
    ) -> None:
        self._broker, self._group, self.process = broker, group, process
        self.listener = listener
        self.generation = -1
        self._assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self.heartbeat = asyncio.get_running_loop().time()
        self.assigning: asyncio.Task[None] | None = None
        self._coordinator = _Coordinator(self)
        self._beating = asyncio.create_task(self._heartbeats())

    async def _heartbeats(self) -> None:
        while True:
            response = await self._coordinator._send_req(_Request(HEARTBEAT))
            if response.error_code in (0, REBALANCE_IN_PROGRESS):
                self.heartbeat = asyncio.get_running_loop().time()
            await asyncio.sleep(1.0)

    async def take(self, share: list[TopicPartition]) -> None:
        """SyncGroup (the membership proof reads its answer), then the rebalance listener."""
        await self._coordinator._send_req(_Request(SYNC_GROUP))
        if self.listener is not None:
            await self.listener.on_partitions_assigned(share)

    def assigned_in(
        self, generation: int, share: list[TopicPartition], committed: dict[TopicPartition, int]
    ) -> None:
        self.generation = generation
        self._assigned = set(share)
        self._paused &= self._assigned
        self._positions = {tp: committed.get(tp, 0) for tp in share}
        self.heartbeat = asyncio.get_running_loop().time()

    async def revoke_all(self) -> None:
        if self.assigning is not None:
            await self.assigning  # the member handles an assignment before giving it up
        assigned, self._assigned = self._assigned, set()
        assert self.listener is not None
        await self.listener.on_partitions_revoked(sorted(assigned))

    async def _still_member(self) -> None:
        """What aiokafka does when its heartbeat finds it left out: revoke, rejoin."""
        if self._group.current(self) or self.process.dead:
            return
        await self.revoke_all()
        await self._group.join(self)

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, *tps: TopicPartition) -> None:
        self._paused |= set(tps) & self._assigned

    def resume(self, *tps: TopicPartition) -> None:
        self._paused -= set(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp in self._assigned:
            self._positions[tp] = offset

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        await self.process.io()
        await self._still_member()
        for _ in range(2):
            batches: dict[TopicPartition, list[Any]] = {}
            left = max_records
            for tp in sorted(self._assigned - self._paused):
                records = self._broker.read(tp, self._positions[tp], left)
                if records:
                    batches[tp] = records
                    self._positions[tp] += len(records)
                    left -= len(records)
            if batches or not self._assigned:
                break
            await self._broker.changed(timeout_ms / 1000)
            await self.process.awake.wait()
        return batches

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        await self.process.io()
        if not self._group.current(self):
            raise CommitFailedError("simulated: the group has rebalanced")
        for tp, meta in offsets.items():
            self._group.committed[tp] = meta.offset

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        await self.process.io()
        return {tp: self._broker.end(tp) for tp in tps}

    async def position(self, tp: TopicPartition) -> int:
        return self._positions.get(tp, 0)


HEARTBEAT, SYNC_GROUP = 12, 14
UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS = 25, 22, 27


class _Request:
    def __init__(self, api_key: int) -> None:
        self.API_KEY = api_key


class _Response:
    def __init__(self, error_code: int) -> None:
        self.error_code = error_code


class _Coordinator:
    """What :class:`~bridge.commands.membership.Membership` reads of aiokafka's coordinator."""

    def __init__(self, consumer: SimConsumer) -> None:
        self._consumer = consumer

    @property
    def generation(self) -> int:
        return self._consumer.generation

    @property
    def member_id(self) -> str:
        return self._consumer.process.name

    async def _send_req(self, request: _Request) -> _Response:
        consumer = self._consumer
        generation = consumer.generation  # as the request leaves
        await consumer.process.io()
        # The group answers at the middle of the round trip; the member reads it at the end.
        return _Response(consumer._group.answer(consumer, generation))


def _newer(value: bytes) -> bytes:
    """A ledger entry as a later version would write it: one field more, in it and its result."""
    entry = json.loads(value)
    entry["written_by_version"] = "9.9"
    if isinstance(entry.get("result"), dict):
        entry["result"]["carrier"] = "sim-carrier"
    return json.dumps(entry).encode()
