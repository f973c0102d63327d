"""The command worker: consumes place-call commands concurrently and commits only what is done.

Records are processed concurrently (``BRIDGE_WORKER__MAX_IN_FLIGHT`` at once, across
partitions); an offset is committed only when every record before it on its partition is
finished (its result is on Kafka). On rebalance the worker finishes what it holds of the
revoked partitions before giving them up, and catches up with the ledger before processing
newly assigned ones.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from bridge.commands.ledger import Ledger
from bridge.commands.offsets import OffsetTracker
from bridge.commands.processor import CommandProcessor
from bridge.commands.records import Record
from bridge.errors import PublishError
from bridge.obs.logs import log_context
from bridge.obs.metrics import Metrics
from bridge.settings import Settings

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: CommandWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._worker.release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._worker.acquire(assigned)


class CommandWorker:
    """Runs the consume → process → commit loop."""

    #: Seconds to wait for in-flight commands of revoked partitions.
    revoke_timeout: float = 30.0
    #: Seconds between offset commits. Committing in the consume loop stalled it for a
    #: coordinator round trip per batch, leaving in-flight slots idle (make bench).
    commit_interval: float = 0.5
    #: Seconds between measurements of the command lag.
    lag_interval: float = 2.0

    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        processor: CommandProcessor,
        ledger: Ledger,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._processor = processor
        self._ledger = ledger
        self._metrics = metrics
        self._slots = asyncio.Semaphore(settings.worker.max_in_flight)
        self._tracker = OffsetTracker()
        self._tasks: dict[asyncio.Task[None], TopicPartition] = {}
        self._running = False
        self._paused = False
        # One commit at a time: two in flight could land out of order and move offsets back.
        self._commit_lock = asyncio.Lock()
        metrics.ledger_entries.set_function(lambda: len(ledger))

    @property
    def ready(self) -> bool:
        """Consuming, and FoneStorm accepts our token."""
        return self._running and self._processor.auth.is_open

    def listener(self) -> ConsumerRebalanceListener:
        """Rebalance hooks to pass to ``subscribe``."""
        return _Rebalance(self)

    async def acquire(self, assigned: list[TopicPartition]) -> None:
        """Before processing new partitions, read every ledger entry written so far."""
        log.info("assigned %s", sorted(tp.partition for tp in assigned))
        await self._ledger.catch_up()

    async def release(self, revoked: list[TopicPartition]) -> None:
        """Finish in-flight commands of revoked partitions and commit them."""
        revoked_set = set(revoked)
        tasks = [task for task, tp in self._tasks.items() if tp in revoked_set]
        if tasks:
            log.info("revoked %d partitions; finishing %d commands", len(revoked), len(tasks))
            await asyncio.wait(tasks, timeout=self.revoke_timeout)
        await self._commit()
        for tp in revoked:
            self._tracker.forget(tp)

    async def run(self) -> None:
        """Consume until cancelled."""
        self._running = True
        self._metrics.worker_ready.set(1)
        committer = asyncio.create_task(self._commit_periodically(), name="offset-committer")
        lag = asyncio.create_task(self._measure_lag_periodically(), name="command-lag")
        try:
            while True:
                self._follow_auth_gate()
                await self._slots.acquire()
                self._slots.release()
                batches = await self._consumer.getmany(
                    timeout_ms=200, max_records=self._settings.worker.max_in_flight
                )
                for tp, records in batches.items():
                    for record in records:
                        await self._slots.acquire()
                        self._start(tp, record)
                self._metrics.worker_ready.set(1 if self.ready else 0)
        finally:
            committer.cancel()
            lag.cancel()
            await asyncio.wait([committer, lag])
            self._running = False
            self._metrics.worker_ready.set(0)

    async def _commit_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.commit_interval)
            await self._commit()

    async def _measure_lag_periodically(self) -> None:
        """``bridge_command_lag``: end offsets from the brokers minus what was handed out.

        Its own task, because the consume loop stops fetching exactly when the backlog grows
        (all slots busy, or paused while FoneStorm refuses the token).
        """
        while True:
            assigned = list(self._consumer.assignment())
            lag = 0
            try:  # IllegalStateError (a KafkaError): a partition revoked meanwhile
                ends = await self._consumer.end_offsets(assigned) if assigned else {}
                for tp, end in ends.items():
                    lag += max(0, end - await self._consumer.position(tp))
            except KafkaError:
                pass  # a rebalance or an outage: keep the last figure
            else:
                self._metrics.command_lag.set(lag)
            await asyncio.sleep(self.lag_interval)

    def _follow_auth_gate(self) -> None:
        # Paused partitions still heartbeat and poll, so the group keeps us while we wait.
        gate_open = self._processor.auth.is_open
        if not gate_open and not self._paused:
            self._consumer.pause(*self._consumer.assignment())
            self._paused = True
        elif gate_open and self._paused:
            self._consumer.resume(*self._consumer.assignment())
            self._paused = False

    def _start(self, tp: TopicPartition, record: Record) -> None:
        self._tracker.started(tp, record.offset)
        self._metrics.commands_in_flight.inc()
        task = asyncio.create_task(self._process(tp, record))
        self._tasks[task] = tp
        task.add_done_callback(self._done)

    async def _process(self, tp: TopicPartition, record: Record) -> None:
        with log_context(command_offset=f"{tp.partition}@{record.offset}"):
            backoff = 0.5
            while True:
                try:
                    await self._processor.process(record)
                except PublishError as exc:
                    # Kafka is down: the result cannot be written, so neither can the offset
                    # be committed. Keep the record and try again; the ledger makes it safe.
                    log.warning("cannot write results (%s); retrying in %.1fs", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                break
        self._tracker.finished(tp, record.offset)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._slots.release()
        self._metrics.commands_in_flight.dec()
        if not task.cancelled() and task.exception() is not None:
            log.error("command task failed", exc_info=task.exception())

    async def _commit(self) -> None:
        async with self._commit_lock:
            commits = self._tracker.take_commits()
            if not commits:
                return
            offsets = {tp: OffsetAndMetadata(offset, "") for tp, offset in commits.items()}
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:
                # Retried with the next commit; a redelivery meanwhile meets the ledger.
                log.warning("offset commit failed: %r", exc)
                self._tracker.restore(commits)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109
        """Let in-flight commands finish (bounded), then commit."""
        if self._tasks:
            log.info("draining %d in-flight commands", len(self._tasks))
            _, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self._commit()
