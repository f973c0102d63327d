"""One place-call command from record to result: the thin shell that performs the decisions.

What to do is decided by pure functions (:func:`~bridge.commands.decision.decide` for the
command, :func:`~bridge.commands.policy.after_failure` after each failed attempt); this module
does the I/O in an order that keeps "at most one call per command" (see
:mod:`bridge.commands.ledger`):

* ``placing`` is acknowledged by Kafka before a request is sent, and the partition's ownership
  and the group membership that granted it (:mod:`bridge.commands.membership`) are checked
  right before both; ``BRIDGE_CALLBACKS__CORRELATION_HOLD`` passes between the two, which
  receivers count on (:mod:`bridge.ingest.correlation`);
* an answer that proves no call exists is recorded as ``pending`` before waiting to retry, and
  so is a cancellation between ``placing`` and sending: the next owner then places the call
  instead of reporting ``in_doubt``;
* once FoneStorm has answered, only the writes that record the answer are retried (until they
  succeed, or the task is cancelled on revoke or shutdown); the command is never decided again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeVar

from aiokafka.errors import KafkaError

from bridge.commands import claim, decision, destinations, policy
from bridge.commands.auth_gate import AuthGate
from bridge.commands.jobs import Job, Phase, Revoked
from bridge.commands.ledger import Ledger, Seen
from bridge.commands.outcomes import OutcomeWriter
from bridge.commands.rate_limit import RateLimiter
from bridge.contracts.base import utcnow
from bridge.contracts.commands import (
    PlaceCallCommand,
    PlaceCallResult,
    ResultStatus,
    parse_command,
)
from bridge.contracts.ledger import LedgerState
from bridge.errors import (
    FoneStormAuthError,
    FoneStormError,
    FoneStormRateLimited,
    InvalidCommand,
    PublishError,
)
from bridge.fonestorm.client import FoneStormClient
from bridge.kafka.publisher import Publisher
from bridge.obs import tracing
from bridge.obs.logs import bind_log_context
from bridge.obs.metrics import Metrics
from bridge.retrying import retry
from bridge.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "/fonestorm-bridge/worker"
#: Commands with ``placing`` written and no answer yet, per slot of MAX_IN_FLIGHT: enough to
#: keep the slots busy through the ledger write and the correlation hold (together about as
#: long as a request), and no more, for each is ``in_doubt`` if its worker dies.
PLACING_PER_SLOT = 2
#: What :meth:`CommandProcessor.process` counts when another worker has the record's result.
SUPERSEDED = "superseded"


class _Conflict:
    """Another job wrote the command's ledger entry: this one sends nothing more."""


CONFLICT = _Conflict()
T = TypeVar("T")


class CommandProcessor:
    """Turns one command record into at most one call and exactly one final result."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        client: FoneStormClient,
        ledger: Ledger,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._worker = settings.worker
        self._hold = settings.callbacks.correlation_hold
        self._publisher = publisher
        self._client = client
        self._ledger = ledger
        self._metrics = metrics
        self._clock = clock
        self._jitter = jitter
        self._out = OutcomeWriter(settings, publisher, ledger, metrics)
        self._monotonic = monotonic
        self._limiter = RateLimiter(settings.worker.rate_limit, clock=monotonic)
        # MAX_IN_FLIGHT bounds the requests out at once; the worker holds more commands than
        # that (IN_HAND_PER_SLOT), so ledger writes and holds do not leave requests idle.
        self._sending = asyncio.Semaphore(settings.worker.max_in_flight)
        self._placing = asyncio.Semaphore(PLACING_PER_SLOT * settings.worker.max_in_flight)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._lock_users: defaultdict[str, int] = defaultdict(int)
        self.auth = AuthGate(settings.worker.auth_retry_interval, clock=monotonic)

    @asynccontextmanager
    async def _exclusive(self, command_id: str) -> AsyncIterator[None]:
        # Copies of one command in this process run one after the other; the lock is
        # dropped with its last user so the map does not grow with every command seen.
        self._lock_users[command_id] += 1
        try:
            async with self._locks[command_id]:
                yield
        finally:
            self._lock_users[command_id] -= 1
            if not self._lock_users[command_id]:
                del self._lock_users[command_id]
                del self._locks[command_id]

    async def process(self, job: Job) -> None:
        """Handle one record; returns once its result is on Kafka.

        Raises :class:`Revoked` when the partition was given up before a request went out.
        """
        try:
            command = parse_command(job.record.value)
        except InvalidCommand as exc:
            await self._out.reject(job, exc)
            return
        bind_log_context(command_id=command.command_id)
        tracing.annotate(**{"fonestorm_bridge.command_id": command.command_id})
        async with self._exclusive(command.command_id):
            if not job.still_owned():
                raise Revoked
            # Another record of this command may be handled elsewhere right now.
            await self._read_ledger()
            with self._ledger.watch(command.command_id) as job.watch:
                job.accepted = self._ledger.version(command.command_id)
                status = await self._decide_and_act(job, command)
        m = self._metrics
        m.child(m.commands, status).inc()
        m.child(m.command_latency, status).observe(time.perf_counter() - job.started)

    async def _read_ledger(self) -> None:
        await retry(self._ledger.catch_up, retry_on=KafkaError, what="reading the ledger")

    async def _decide_and_act(self, job: Job, command: PlaceCallCommand) -> str:
        """What became of the command (a result status, or :data:`SUPERSEDED`)."""
        # Every outcome below writes: a worker back from a pause must not decide on a record
        # that the group gave to another (it would report in_doubt over a call in flight).
        await job.fenced()
        action = decision.decide(
            command,
            self._ledger.get(command.command_id),
            source=job.source,
            now=self._clock(),
            written_at=job.written_at,
            retention=self._worker.ledger_retention,
            delivery=self._worker.delivery,
            refusal=destinations.refusal(
                command,
                fonenumbers=self._settings.fonestorm.fonenumbers,
                worker_settings=self._worker,
                region=self._settings.callbacks.default_region,
            ),
        )
        if isinstance(action, decision.Republish):
            # Redelivery of the record we finished: the crash hit before the commit.
            log.info(
                "command already finished as %s; publishing its result again",
                action.result.status.value,
            )
            await self._out.until_written(
                "the result", lambda: self._out.publish(action.result, command)
            )
            return action.result.status.value
        if isinstance(action, decision.Finish):
            if action.dead_letter:
                log.warning("command refused: %s", action.message)
            result = self._out.result(
                job,
                command,
                action.status,
                call_id=action.call_id,
                error_code=action.error_code,
                error_message=action.message,
            )
            await self._out.settle(
                job,
                command,
                result,
                dead_letter=(action.error_code, action.message) if action.dead_letter else None,
            )
            return result.status.value
        if action.again:
            log.warning("an earlier attempt was interrupted; placing again (at-least-once)")
        placed = await self._place(job, command)
        return SUPERSEDED if placed is None else placed.status.value

    async def _place(self, job: Job, command: PlaceCallCommand) -> PlaceCallResult | None:
        try:
            return await self._attempts(job, command)
        except asyncio.CancelledError:
            if (
                job.phase is Phase.MARKING
                and not job.call_possible
                and job.proven()
                and not self._foreign(job)
            ):
                # ``placing`` may be on the ledger and no request went out: say so, or the
                # next owner reports in_doubt for a call nobody made. Bounded by the produce
                # timeout; a failure here leaves in_doubt, which is still true. Unproven, the
                # next owner may have written already: in_doubt is left then too.
                try:
                    await self._out.mark(job, command, LedgerState.PENDING)
                except PublishError as exc:
                    log.warning("cancelled before sending; cannot record that: %s", exc.message)
            raise

    @asynccontextmanager
    async def _turn(self, job: Job) -> AsyncIterator[None]:
        """A rate-limit token, and for a command not yet on the ledger one of its slots."""
        if job.placing:
            # A retry with ``placing`` on the ledger: in_doubt if this worker dies now, so it
            # goes first, and it needs no slot of those that bound how many are exposed.
            await self._limiter.acquire(urgent=True)
            yield
            return
        async with self._placing:
            await self._limiter.acquire()
            yield

    async def _attempts(self, job: Job, command: PlaceCallCommand) -> PlaceCallResult | None:
        attempts = 0
        started = self._monotonic()
        while True:
            job.phase = Phase.WAITING
            # While FoneStorm refuses our token, only the command holding the probe goes on.
            async with self.auth.admit(), self._turn(job):
                outcome = await self._attempt(job, command, first=attempts == 0)
            if isinstance(outcome, _Conflict):
                return await self._stand_down(job, command)
            if isinstance(outcome, policy.GiveUp):
                return await self._give_up(job, command, outcome, attempts)
            attempts += 1
            if isinstance(outcome, str):
                job.phase = Phase.RECORDING
                result = self._out.result(
                    job, command, ResultStatus.PLACED, call_id=outcome, attempts=attempts
                )
                return await self._conclude(job, command, result)
            failure = outcome
            step = policy.after_failure(
                failure,
                attempts=attempts,
                elapsed=self._monotonic() - started,
                call_possible=job.call_possible,
                now=self._clock(),
                not_after=command.not_after,
                settings=self._worker,
                jitter=self._jitter(),
            )
            job.call_possible = job.call_possible or failure.call_possible
            if isinstance(step, policy.GiveUp):
                return await self._give_up(job, command, step, attempts)
            job.phase = Phase.WAITING
            await self._no_call(job, command)
            if isinstance(step, policy.PauseForAuth):
                attempts -= 1  # refused before anything was created: not the command's fault
                continue
            log.warning(
                "create-call attempt %d failed (%s: %s); retrying in %.2fs",
                attempts,
                failure.code,
                failure.message,
                step.delay,
            )
            await asyncio.sleep(step.delay)

    async def _attempt(
        self, job: Job, command: PlaceCallCommand, *, first: bool
    ) -> str | policy.Failure | policy.GiveUp | _Conflict:
        """One attempt: re-read the ledger, claim the command, send; what came of it."""
        if not job.still_owned():
            raise Revoked
        if not first:
            # A copy of this command elsewhere may have been placed while this one waited.
            await self._read_ledger()
        if self._foreign(job):
            return CONFLICT
        stop = self._last_look(job, command)
        if stop is not None:
            return stop
        await job.fenced()
        job.phase = Phase.MARKING
        if not job.placing and not await self._claim(job, command):
            return CONFLICT
        async with self._sending:
            try:
                await job.fenced()
            except Revoked:
                await self._no_call(job, command)
                raise
            # The writes and the wait for a slot took time: look again right before sending.
            stop = self._last_look(job, command)
            if stop is not None:
                return stop
            if self._foreign(job):
                return CONFLICT
            job.phase = Phase.SENT
            return await self._send(command)

    def _last_look(self, job: Job, command: PlaceCallCommand) -> policy.GiveUp | None:
        """Right before the request: ``not_after`` may have passed in the writes and the waits."""
        return policy.before_sending(
            now=self._clock(), not_after=command.not_after, call_possible=job.call_possible
        )

    async def _claim(self, job: Job, command: PlaceCallCommand) -> bool:
        """Write ``placing`` and read it back: whether this job won the command (claim module).

        The correlation hold runs meanwhile: no callback of this call may reach a receiver
        sooner, so one that has read the ledger as of this long before a callback knows of
        this placement and answers callbacks of other calls at once.
        """
        job.placing = True  # set first: a write that fails may still have landed
        written = await self._out.state(job, command, LedgerState.PLACING)
        await asyncio.gather(self._ledger.read_back(written), asyncio.sleep(self._hold))
        lost = claim.lost(job.watch.seen, writer=job.writer, after=job.accepted)
        if lost:
            log.warning(
                "another writer took the command on the ledger first (%s); not placing it",
                lost[-1].entry.source if lost[-1].entry else "an unreadable entry",
            )
            await claim.restore(
                self._ledger, job.watch, writer=job.writer, write=self._out.put_back
            )
            return False
        job.accepted = written.offset
        return True

    def _foreign(self, job: Job) -> list[Seen]:
        """Ledger entries another job wrote over this one's since it last looked.

        Another job's ``placing`` does not count: written after this job's read, it loses
        its claim to this one's or wins over it, which :meth:`_claim` tells.
        """
        return [
            s
            for s in claim.foreign(job.watch.seen, writer=job.writer, after=job.accepted)
            if s.entry is None or s.entry.state is not LedgerState.PLACING
        ]

    async def _stand_down(self, job: Job, command: PlaceCallCommand) -> PlaceCallResult | None:
        """Another job wrote this command's entry: send nothing, write nothing to the ledger."""
        job.phase = Phase.RECORDING
        others = claim.foreign(job.watch.seen, writer=job.writer, after=job.accepted)
        decisive = self._foreign(job) or others
        latest = decisive[-1].entry if decisive else None
        finish = decision.after_conflict(latest, source=job.source, call_possible=job.call_possible)
        if finish is None:
            log.warning("another worker is handling this command record; leaving it its result")
            return None
        if isinstance(finish, decision.Republish):
            log.warning("another worker finished this command record; publishing its result")
            done = finish.result
            await self._out.until_written("the result", lambda: self._out.publish(done, command))
            return None
        result = self._out.result(
            job,
            command,
            finish.status,
            call_id=finish.call_id,
            error_code=finish.error_code,
            error_message=finish.message,
        )
        log.info("command %s: %s", result.status.value, finish.message)
        await self._out.until_written("the result", lambda: self._out.publish(result, command))
        return result

    async def _send(self, command: PlaceCallCommand) -> str | policy.Failure:
        """One create-call request: the new call's id, or what went wrong."""
        try:
            call = await self._client.create_call(
                command.fonenumber, command.to, command.tts, idempotency_key=command.command_id
            )
        except FoneStormError as exc:
            self._metrics.fonestorm_requests.labels("create_call", exc.code).inc()
            # Before the probe passes on, so the next one knows whether and when to go.
            self.auth.observe(
                status=exc.status, refused=isinstance(exc, FoneStormAuthError), reason=exc.message
            )
            return policy.Failure(
                code=exc.code,
                message=exc.message,
                retriable=exc.retriable,
                auth=isinstance(exc, FoneStormAuthError),
                retry_after=exc.retry_after if isinstance(exc, FoneStormRateLimited) else None,
            )
        self.auth.reopen()
        self._metrics.child(self._metrics.fonestorm_requests, "create_call", "ok").inc()
        return call.id

    async def _no_call(self, job: Job, command: PlaceCallCommand) -> None:
        """The last answer proves no call exists: record ``pending`` over our ``placing``.

        Only while the group membership is proven: else the next owner may have written since.
        """
        if job.placing and not job.call_possible and job.proven() and not self._foreign(job):
            await self._out.state(job, command, LedgerState.PENDING)
            job.placing = False

    async def _give_up(
        self, job: Job, command: PlaceCallCommand, step: policy.GiveUp, attempts: int
    ) -> PlaceCallResult | None:
        job.phase = Phase.RECORDING
        result = self._out.result(
            job,
            command,
            step.status,
            attempts=attempts,
            error_code=step.code,
            error_message=step.message,
        )
        dead_letter = (step.code, step.message) if step.dead_letter else None
        return await self._conclude(job, command, result, dead_letter=dead_letter)

    async def _conclude(
        self,
        job: Job,
        command: PlaceCallCommand,
        result: PlaceCallResult,
        *,
        dead_letter: tuple[str, str] | None = None,
    ) -> PlaceCallResult | None:
        """Record the outcome, unless another job recorded this command's outcome first.

        That happens when this worker lost its partition while the request was out (frozen
        past its session): the next owner already reported the command, usually ``in_doubt``.
        Its result stands; a call this job made is published as a reconciled ``CallPlaced``.
        """
        job.phase = Phase.RECORDING
        if not job.proven():
            # Membership unproven: another owner may have written; read what it did.
            await self._read_ledger()
        if not self._foreign(job):
            await self._out.settle(job, command, result, dead_letter=dead_letter)
            return result
        if result.status is ResultStatus.PLACED and result.call_id:
            log.warning(
                "call %s was placed, but another worker reported the command meanwhile; "
                "publishing the call as reconciled, not a second result",
                result.call_id,
            )
            await self._out.until_written(
                "the call event", lambda: self._out.placed(result, command, reconciled=True)
            )
            return None
        return await self._stand_down(job, command)
