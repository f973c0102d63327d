"""The command worker: consumes place-call commands concurrently and commits only what is done.

Records are processed concurrently, across partitions: at most ``BRIDGE_WORKER__MAX_IN_FLIGHT``
create-call requests out at once (the processor's semaphore), and :data:`IN_HAND_PER_SLOT` times
as many records in hand (ledger writes, holds, backoff). An offset is committed only when every
record before it on its partition is finished (its result is on Kafka). Nothing is queued
outside aiokafka: a batch is started the moment ``getmany`` returns it, and a record that may
not start now is handed back (``seek`` to it, ``pause`` its partition), so a revoked
partition's records are never started late. The loop keeps polling while every slot is busy
or FoneStorm refuses our token (partitions paused), so the consumer stays in its group; while
the token is refused it starts one record whenever no command is in hand, for a command to
probe with (:mod:`bridge.commands.auth_gate`).

Rebalances (aiokafka runs them in its own task, see :class:`_Rebalance`):

* **revoke**: the partitions stop being owned at once; their jobs that have not sent a request
  are cancelled (a job between ``placing`` and sending records ``pending`` while the group
  membership is proven, :mod:`bridge.commands.membership`), jobs whose request is out get up
  to 80% of ``BRIDGE_WORKER__REBALANCE_TIMEOUT`` to record the answer; then the offsets are
  committed, while the group still lets us;
* **assign**: a new generation; the new partitions stay paused until the ledger has caught up
  with everything written before the assignment (which includes every ``placing`` of their
  previous owner, who finished revoking before we were assigned).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from bridge.commands.auth_gate import records_to_start
from bridge.commands.jobs import Job, Revoked
from bridge.commands.ledger import Ledger
from bridge.commands.membership import Fence, Membership
from bridge.commands.offsets import OffsetTracker
from bridge.commands.ownership import Ownership
from bridge.commands.processor import CommandProcessor
from bridge.commands.records import Record
from bridge.contracts.ledger import LedgerEntry
from bridge.obs import tracing
from bridge.obs.logs import log_context
from bridge.obs.metrics import Metrics
from bridge.retrying import retry
from bridge.settings import REVOKE_SHARE, Settings
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Commands in hand per create-call request allowed out (``BRIDGE_WORKER__MAX_IN_FLIGHT``): a
#: command spends most of its time writing the ledger and results and in its correlation hold,
#: not in the request, and with one command per request the requests sat idle behind Kafka
#: round trips (``python -m bench.compare_worker``).
IN_HAND_PER_SLOT = 4


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: CommandWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._worker.release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._worker.acquire(assigned)


class CommandWorker:
    """Runs the consume → process → commit loop."""

    #: Seconds between offset commits. Committing in the consume loop stalled it for a
    #: coordinator round trip per batch, leaving in-flight slots idle.
    commit_interval: float = 0.5
    #: Seconds between measurements of the command lag.
    lag_interval: float = 2.0
    #: Longest wait (s) for a free slot before polling anyway, all partitions paused.
    full_poll_interval: float = 1.0

    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        processor: CommandProcessor,
        ledger: Ledger,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._processor = processor
        self._ledger = ledger
        self._metrics = metrics
        self._in_hand = IN_HAND_PER_SLOT * settings.worker.max_in_flight
        self.revoke_budget = settings.worker.rebalance_timeout * REVOKE_SHARE
        self._ownership = Ownership()
        self.membership = Membership(settings.worker, clock)
        self._fences: dict[int, Fence] = {}
        self._tracker = OffsetTracker()
        self._jobs: dict[asyncio.Task[None], tuple[TopicPartition, Job]] = {}
        self._slot_freed = asyncio.Event()
        self._catching_up: set[asyncio.Task[None]] = set()
        self._running = False
        # One commit at a time: two in flight could land out of order and move offsets back.
        self._commit_lock = asyncio.Lock()
        metrics.ledger_entries.set_function(lambda: len(ledger))

    @property
    def ready(self) -> bool:
        """Consuming, and FoneStorm accepts our token."""
        return self._running and self._processor.auth.is_open

    @property
    def not_ready_reason(self) -> str:
        """Why :attr:`ready` is false, for ``/readyz``; empty while ready."""
        if not self._running:
            return "not consuming yet"
        return self._processor.auth.describe()

    @property
    def generation(self) -> int:
        """How many assignments this worker has had (each rebalance adds one)."""
        return self._ownership.generation

    def owns(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` is assigned to this worker now (revoked ones stop at once)."""
        return self._ownership.generation_of(tp) is not None

    async def ledger_entry(self, command_id: str) -> LedgerEntry | None:
        """The latest ledger entry of a command that this worker has read."""
        return await self._ledger.get(command_id)

    def handling(self, command_id: str) -> bool:
        """Whether a command of this id is in hand here, past its first read of the ledger."""
        return self._ledger.watched(command_id)

    def listener(self) -> ConsumerRebalanceListener:
        """Rebalance hooks to pass to ``subscribe``."""
        return _Rebalance(self)

    def acquire(self, assigned: list[TopicPartition]) -> None:
        """New partitions: paused until the ledger has caught up for this generation."""
        generation = self._ownership.assign(assigned)
        live = self._ownership.generations()
        self._fences = {g: f for g, f in self._fences.items() if g in live}
        self._fences[generation] = self.membership.fence()
        for tp in assigned:
            self._tracker.assign(tp, generation)
        if assigned:
            self._consumer.pause(*assigned)
        log.info("assigned %s (generation %d)", sorted(tp.partition for tp in assigned), generation)
        task = asyncio.create_task(self._catch_up(assigned, generation), name="ledger-catch-up")
        self._catching_up.add(task)
        task.add_done_callback(self._catching_up.discard)

    async def _catch_up(self, assigned: list[TopicPartition], generation: int) -> None:
        # Measured now, after every previous owner has finished revoking: it covers all their
        # ledger writes for these partitions.
        ends = await retry(
            self._ledger.end_offsets, retry_on=KafkaError, what="reading the ledger's end offsets"
        )
        await self._ledger.wait_for(ends)
        self._ownership.mark_ready(assigned, generation)
        log.info("ledger caught up; starting %s", sorted(tp.partition for tp in assigned))

    async def release(self, revoked: list[TopicPartition]) -> None:
        """Give up partitions: cancel what has not sent, let what has finish, then commit."""
        revoked_set = set(revoked)
        self._ownership.revoke(revoked_set)
        jobs = {task: job for task, (tp, job) in self._jobs.items() if tp in revoked_set}
        for task, job in jobs.items():
            if not job.must_finish:
                task.cancel()
        if jobs:
            log.info(
                "revoked %d partitions; %d commands in flight, %d with a request out",
                len(revoked),
                len(jobs),
                sum(j.must_finish for j in jobs.values()),
            )
            _, late = await asyncio.wait(jobs, timeout=self.revoke_budget)
            if late:
                # Their next owner will find ``placing`` and report in_doubt.
                log.error(
                    "%d commands did not finish within %.0fs of the revocation; cancelled",
                    len(late),
                    self.revoke_budget,
                )
                await self._cancel_jobs(late)
        await self._commit()
        for tp in revoked:
            self._tracker.revoke(tp)

    async def run(self) -> None:
        """Consume until cancelled."""
        self._running = True
        self._metrics.worker_ready.set(1)
        committer = asyncio.create_task(self._commit_periodically(), name="offset-committer")
        lag = asyncio.create_task(self._measure_lag_periodically(), name="command-lag")
        try:
            while True:
                await self._poll_once()
                self._metrics.worker_ready.set(1 if self.ready else 0)
        finally:
            for task in (committer, lag, *self._catching_up):
                await cancel_and_wait(task)
            self._running = False
            self._metrics.worker_ready.set(0)

    def _free(self) -> int:
        """Commands that may start now: :data:`IN_HAND_PER_SLOT` x ``max_in_flight`` at most."""
        return max(0, self._in_hand - len(self._jobs))

    async def _poll_once(self) -> None:
        free = self._free()
        if free == 0:
            # Usually a command finishes within milliseconds; if not, poll anyway (everything
            # paused, so nothing is fetched) to stay a live member of the group.
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.full_poll_interval):
                    await self._slot_freed.wait()
            free = self._free()
        startable = self._startable(free)
        self._apply_pauses(accepting=startable > 0)
        batches = await self._consumer.getmany(timeout_ms=200, max_records=max(startable, 1))
        # No await from here to the last start: the assignment cannot change meanwhile.
        for tp, records in batches.items():
            generation = self._ownership.generation_of(tp)
            if (
                generation is None
                or not self._ownership.startable(tp)
                or len(records) > self._startable(self._free())
            ):
                # Not ours to start now: give the records back to aiokafka.
                self._consumer.seek(tp, records[0].offset)
                self._consumer.pause(tp)
                continue
            for record in records:
                self._start(tp, generation, record)

    def _startable(self, free: int) -> int:
        return records_to_start(
            gate_open=self._processor.auth.is_open, in_hand=len(self._jobs), free=free
        )

    def _apply_pauses(self, *, accepting: bool) -> None:
        assignment = self._consumer.assignment()
        wanted = self._ownership.to_pause(assignment, accepting=accepting)
        paused = self._consumer.paused()
        if wanted - paused:
            self._consumer.pause(*(wanted - paused))
        if (paused - wanted) & assignment:
            self._consumer.resume(*((paused - wanted) & assignment))

    def _start(self, tp: TopicPartition, generation: int, record: Record) -> None:
        self._tracker.started(tp, record.offset, generation)
        self._metrics.commands_in_flight.inc()
        job = Job(record, lambda: self._ownership.owns(tp, generation), self._fences[generation])
        task = asyncio.create_task(self._process(tp, generation, job))
        self._jobs[task] = (tp, job)
        task.add_done_callback(self._done)

    async def _process(self, tp: TopicPartition, generation: int, job: Job) -> None:
        with (
            log_context(command_offset=f"{tp.partition}@{job.record.offset}"),
            tracing.processing(job.record, self._settings.worker.group_id),
        ):
            try:
                await self._processor.process(job)
            except Revoked:
                log.info("partition revoked before the request; left to its next owner")
                return
            except Exception:
                # A bug, or a record Kafka refuses: holding the offset would freeze the
                # partition's commits for the life of the process, so it moves on.
                log.exception("command failed unexpectedly; moving on")
                self._metrics.commands.labels("error").inc()
        self._tracker.finished(tp, job.record.offset, generation)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._jobs.pop(task, None)
        self._slot_freed.set()
        self._metrics.commands_in_flight.dec()

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
        """Shutdown: cancel what has not sent, let the rest finish (bounded), then commit."""
        # As on a revocation: a job whose request is answered with "no call, try again" must
        # not send another one while the worker stops; it is left ``pending`` to the next owner.
        self._ownership.revoke_all()
        for task, (_, job) in self._jobs.items():
            if not job.must_finish:
                task.cancel()
        if self._jobs:
            log.info("draining %d in-flight commands", len(self._jobs))
            _, pending = await asyncio.wait(list(self._jobs), timeout=timeout)
            await self._cancel_jobs(pending)
        await self._commit()

    async def _cancel_jobs(self, tasks: Iterable[asyncio.Task[None]]) -> None:
        # A cancelled job between ``placing`` and sending records ``pending`` first: give it
        # a produce timeout before cancelling again.
        interval = self._settings.kafka.produce_timeout + 1.0
        await asyncio.gather(*(cancel_and_wait(task, interval=interval) for task in tasks))
