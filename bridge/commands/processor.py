"""One place-call command from record to result: the thin shell that performs the decisions.

What to do is decided by pure functions (:func:`~bridge.commands.decision.decide` for the
command, :func:`~bridge.commands.policy.after_failure` after each failed attempt); this module
does the I/O in an order that keeps "at most one call per command" (see
:mod:`bridge.commands.ledger`):

* every attempt takes its turn from :mod:`bridge.commands.admission` and re-reads the ledger;
* ``placing`` is a claim (:mod:`bridge.commands.claim`): acknowledged by Kafka and read back
  before a request is sent, and lost to another job's entry that came first; the partition's
  ownership and the group membership that granted it (:mod:`bridge.commands.membership`) are
  checked right before it, before the request, and before a decision is recorded;
  ``BRIDGE_CALLBACKS__CORRELATION_HOLD`` passes between ``placing`` and the request, which
  receivers count on (:mod:`bridge.ingest.correlation`);
* ``not_after`` is checked right before each request goes out;
* an answer that proves no call exists is recorded as ``pending`` before waiting to retry, and
  so is a cancellation between ``placing`` and sending: the next owner then places the call
  instead of reporting ``in_doubt``;
* once FoneStorm has answered, only the writes that record the answer are retried (until they
  succeed, or the task is cancelled on revoke or shutdown); the command is never decided again,
  and the answer is recorded only if no other job recorded one meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from aiokafka.errors import KafkaError

from bridge.commands import claim, decision, destinations, policy
from bridge.commands.admission import Admission
from bridge.commands.jobs import Job, Phase, Revoked
from bridge.commands.ledger import Ledger
from bridge.commands.outcomes import OutcomeWriter
from bridge.contracts.base import utcnow
from bridge.contracts.commands import (
    PlaceCallCommand,
    PlaceCallResult,
    ResultStatus,
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
from bridge.schema_registry.commands import CommandReader
from bridge.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "/fonestorm-bridge/worker"
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
        commands: CommandReader | None = None,
    ) -> None:
        self._settings = settings
        # Plain JSON only, unless registry mode reads framed commands too.
        self._commands = commands or CommandReader()
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
        self._admission = Admission(settings.worker, monotonic=monotonic)
        self._claims = claim.Claims(
            ledger,
            self._out,
            hold=self._hold,
            withdrawal_wait=2 * settings.kafka.produce_timeout,
            monotonic=monotonic,
        )
        self.auth = self._admission.auth

    async def process(self, job: Job) -> None:
        """Handle one record; returns once its result is on Kafka.

        Raises :class:`Revoked` when the partition was given up before a request went out.
        """
        try:
            command = await self._commands.read(job.record.value)
        except InvalidCommand as exc:
            await self._out.reject(job, exc)
            return
        bind_log_context(command_id=command.command_id)
        tracing.annotate(**{"fonestorm_bridge.command_id": command.command_id})
        async with self._admission.exclusive(command.command_id):
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
            await self._ledger.get(command.command_id),
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
            dead_letter = (action.error_code, action.message) if action.dead_letter else None
            concluded = await self._conclude(job, command, result, dead_letter=dead_letter)
            return SUPERSEDED if concluded is None else concluded.status.value
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
                and not self._claims.overwritten(job)
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

    async def _attempts(self, job: Job, command: PlaceCallCommand) -> PlaceCallResult | None:
        attempts = 0
        started = self._monotonic()
        while True:
            job.phase = Phase.WAITING
            async with self._admission.turn(job):
                outcome = await self._attempt(job, command, first=attempts == 0)
            if isinstance(outcome, _Conflict):
                return await self._claims.stand_down(job, command)
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
            if not job.still_owned():
                # Given up (revoked, or the worker stops) while the request was out: the next
                # owner tries again, and the revocation need not wait out the backoff.
                raise Revoked
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
        # A worker back from a pause stops here, before it reads, decides or writes anything.
        await job.fenced()
        if not first:
            # A copy of this command elsewhere may have been placed while this one waited.
            await self._read_ledger()
        if self._claims.overwritten(job):
            return CONFLICT
        stop = self._last_look(job, command)
        if stop is not None:
            return stop
        await job.fenced()
        job.phase = Phase.MARKING
        if not job.placing and not await self._claims.claim(job, command):
            return CONFLICT
        async with self._admission.sending():
            try:
                await job.fenced()
            except Revoked:
                await self._no_call(job, command)
                raise
            # The writes and the wait for a slot took time: look again right before sending.
            stop = self._last_look(job, command)
            if stop is not None:
                return stop
            if self._claims.overwritten(job):
                return CONFLICT
            job.phase = Phase.SENT
            return await self._send(command)

    def _last_look(self, job: Job, command: PlaceCallCommand) -> policy.GiveUp | None:
        """Right before the request: ``not_after`` may have passed in the writes and the waits."""
        return policy.before_sending(
            now=self._clock(), not_after=command.not_after, call_possible=job.call_possible
        )

    async def _send(self, command: PlaceCallCommand) -> str | policy.Failure:
        """One create-call request: the new call's id, or what went wrong."""
        # E.164, never the command's own spelling: only what the destination checks read.
        fonenumber, to = destinations.dialled(command, self._settings.callbacks.default_region)
        try:
            call = await self._client.create_call(
                fonenumber, to, command.tts, idempotency_key=command.command_id
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
        if (
            job.placing
            and not job.call_possible
            and job.proven()
            and not self._claims.overwritten(job)
        ):
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
        if not self._claims.overwritten(job):
            since = claim.verified(job)
            written = await self._out.record(job, command, result, dead_letter=dead_letter)
            # Proven still once written, no other owner can have written before it landed;
            # else (paused on the way) read it back, as a claim is.
            if (
                written is None
                or job.proven()
                or await self._claims.counted(job, written, since=since)
            ):
                await self._out.announce(result, command)
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
        return await self._claims.stand_down(job, command)
