"""One place-call command from record to result: ledger, retries, FoneStorm, results.

See :mod:`bridge.commands.ledger` for why this places at most one call per ``command_id``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from aiolimiter import AsyncLimiter

from bridge.commands.auth_gate import AuthGate
from bridge.commands.ledger import Ledger, LedgerEntry, LedgerState
from bridge.commands.records import Record, readable_command_id, record_ref, source_of
from bridge.contracts.base import utcnow, uuid5
from bridge.contracts.calls import PLACED_ID_NAMESPACE, CallPlaced
from bridge.contracts.commands import (
    PlaceCallCommand,
    PlaceCallResult,
    ResultStatus,
    parse_command,
)
from bridge.contracts.dead_letters import DeadLetter
from bridge.errors import (
    FoneStormAuthError,
    FoneStormError,
    FoneStormRateLimited,
    InvalidCommand,
)
from bridge.fonestorm.client import FoneStormClient
from bridge.kafka.publisher import Publisher
from bridge.obs.logs import bind_log_context
from bridge.obs.metrics import Metrics
from bridge.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "/fonestorm-bridge/worker"
#: FoneStorm errors after which the call may exist: the request was sent and the answer lost,
#: a 5xx, or a 2xx whose body named no call.
AMBIGUOUS_CODES = frozenset({"timeout", "connection_error", "server_error", "bad_response"})


class CommandProcessor:
    """Turns one command record into at most one call and exactly one final result."""

    #: Seconds between retries of a request refused for authentication.
    auth_retry_interval: float = 30.0

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        client: FoneStormClient,
        ledger: Ledger,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._worker = settings.worker
        self._publisher = publisher
        self._client = client
        self._ledger = ledger
        self._metrics = metrics
        self._limiter = AsyncLimiter(settings.worker.rate_limit, 1.0)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._lock_users: defaultdict[str, int] = defaultdict(int)
        self.auth = AuthGate()

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

    async def process(self, record: Record) -> None:
        """Handle one record; returns once its result is on Kafka (or raises PublishError)."""
        job = _Job(record, utcnow(), time.perf_counter())
        try:
            command = parse_command(record.value)
        except InvalidCommand as exc:
            await self._reject(job, exc)
            return
        bind_log_context(command_id=command.command_id)
        async with self._exclusive(command.command_id):
            result = await self._decide(job, command)
        m = self._metrics
        m.child(m.commands, result.status.value).inc()
        m.child(m.command_latency, result.status.value).observe(time.perf_counter() - job.started)

    async def _decide(self, job: _Job, command: PlaceCallCommand) -> PlaceCallResult:
        entry = self._ledger.get(command.command_id)
        if entry is not None and entry.state is LedgerState.DONE and entry.result is not None:
            if entry.source == job.source:
                # Redelivery of the record we finished: the crash hit before the commit.
                log.info("command already finished as %s; publishing its result again",
                         entry.result.status.value)  # fmt: skip
                await self._publish(entry.result, command)
                return entry.result
            result = self._result(
                job, command, ResultStatus.DUPLICATE, call_id=entry.result.call_id,
                error_code="duplicate",
                error_message=f"command_id already finished as {entry.result.status.value}",
            )  # fmt: skip
            await self._publish(result, command)
            return result
        if entry is not None and entry.state is LedgerState.PLACING:
            if self._worker.delivery == "at-most-once":
                result = self._result(
                    job, command, ResultStatus.IN_DOUBT, error_code="in_doubt",
                    error_message="an earlier attempt was interrupted during the create-call "
                    "request; the call may or may not have been placed",
                )  # fmt: skip
                return await self._finish(job, command, result)
            log.warning("an earlier attempt was interrupted; placing again (at-least-once)")
        if command.not_after is not None and command.not_after <= utcnow():
            result = self._result(
                job, command, ResultStatus.EXPIRED, error_code="expired",
                error_message=f"not_after {command.not_after.isoformat()} has passed",
            )  # fmt: skip
            return await self._finish(job, command, result)
        return await self._place(job, command)

    async def _place(self, job: _Job, command: PlaceCallCommand) -> PlaceCallResult:
        deadline = time.monotonic() + self._worker.max_retry_seconds
        attempts = 0
        probing = False  # this task saw 401/403 and retries to find out when it is fixed
        placing = False  # the ledger says "placing" for this command
        while True:
            if not probing:
                await self.auth.wait()
            attempts += 1
            try:
                async with self._limiter:
                    if not placing:
                        # Marked once the rate limiter lets the request go, not while queued:
                        # a crash in the queue must not leave a never-sent command in doubt.
                        await self._mark(job, command, LedgerState.PLACING)
                        placing = True
                    call = await self._client.create_call(
                        command.fonenumber, command.to, command.tts,
                        idempotency_key=command.command_id,
                    )  # fmt: skip
            except FoneStormAuthError as exc:
                # Refused before anything was created: not the command's fault, not an attempt.
                attempts -= 1
                probing = True
                self._metrics.fonestorm_requests.labels("create_call", exc.code).inc()
                self.auth.close(exc.message)
                await self._mark(job, command, LedgerState.PENDING)
                placing = False
                await asyncio.sleep(self.auth_retry_interval)
                continue
            except FoneStormError as exc:
                self._metrics.fonestorm_requests.labels("create_call", exc.code).inc()
                if exc.code in AMBIGUOUS_CODES and not self._worker.retry_ambiguous:
                    result = self._result(
                        job, command, ResultStatus.IN_DOUBT, attempts=attempts,
                        error_code="in_doubt",
                        error_message=f"FoneStorm may have created the call ({exc.code}: "
                        f"{exc.message}); not retried (BRIDGE_WORKER__RETRY_AMBIGUOUS=false)",
                    )  # fmt: skip
                    return await self._finish(job, command, result)
                delay = self._backoff(attempts, exc)
                exhausted = attempts >= self._worker.max_attempts
                if not exc.retriable or exhausted or time.monotonic() + delay > deadline:
                    why = "permanent error" if not exc.retriable else "retries exhausted"
                    result = self._result(
                        job, command, ResultStatus.FAILED, attempts=attempts,
                        error_code=exc.code, error_message=f"{why}: {exc.message}",
                    )  # fmt: skip
                    await self._dead_letter(job, exc.code, result.error_message or "", command)
                    return await self._finish(job, command, result)
                log.warning(
                    "create-call attempt %d failed (%s: %s); retrying in %.2fs",
                    attempts, exc.code, exc.message, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                continue
            self.auth.reopen()
            self._metrics.child(self._metrics.fonestorm_requests, "create_call", "ok").inc()
            result = self._result(
                job, command, ResultStatus.PLACED, call_id=call.id, attempts=attempts
            )
            return await self._finish(job, command, result)

    def _backoff(self, attempts: int, error: FoneStormError) -> float:
        """Exponential backoff with jitter; never sooner than FoneStorm's ``Retry-After``."""
        worker = self._worker
        ceiling = min(worker.backoff_max, worker.backoff_initial * 2.0 ** (attempts - 1))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto
        if isinstance(error, FoneStormRateLimited) and error.retry_after is not None:
            delay = max(delay, float(error.retry_after))
        return delay

    def _result(
        self,
        job: _Job,
        command: PlaceCallCommand,
        status: ResultStatus,
        *,
        call_id: str | None = None,
        attempts: int = 0,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> PlaceCallResult:
        return PlaceCallResult(
            command_id=command.command_id,
            status=status,
            call_id=call_id,
            attempts=attempts,
            error_code=error_code,
            error_message=error_message,
            correlation_id=command.correlation_id,
            metadata=command.metadata,
            received_at=job.received_at,
            finished_at=utcnow(),
        )

    async def _mark(self, job: _Job, command: PlaceCallCommand, state: LedgerState) -> None:
        await self._ledger.record(
            LedgerEntry(
                command_id=command.command_id, state=state, source=job.source, updated_at=utcnow()
            )
        )

    async def _finish(
        self, job: _Job, command: PlaceCallCommand, result: PlaceCallResult
    ) -> PlaceCallResult:
        """Ledger ``done`` first, then the result: a crash in between republishes it."""
        await self._ledger.record(
            LedgerEntry(
                command_id=command.command_id,
                state=LedgerState.DONE,
                source=job.source,
                result=result,
                updated_at=utcnow(),
            )
        )
        await self._publish(result, command)
        log.info("command %s (call %s, %d attempts)", result.status.value, result.call_id,
                 result.attempts)  # fmt: skip
        return result

    async def _publish(self, result: PlaceCallResult, command: PlaceCallCommand | None) -> None:
        topics = self._settings.topics
        placed: CallPlaced | None = None
        if result.status is ResultStatus.PLACED and result.call_id and command is not None:
            placed = CallPlaced(
                event_id=uuid5(PLACED_ID_NAMESPACE, f"placed|{result.call_id}"),
                call_id=result.call_id, command_id=result.command_id,
                correlation_id=result.correlation_id, fonenumber=command.fonenumber,
                to=command.to, placed_at=result.finished_at,
            )  # fmt: skip
            publish_placed = self._publisher.publish_event(
                topics.call_events, placed, source=SOURCE
            )
        publish_result = self._publisher.publish_event(
            topics.place_call_results, result, source=SOURCE
        )
        if placed is None:
            await publish_result
            return
        # Two topics, no order between them for consumers anyway: one round trip, not two.
        outcomes = await asyncio.gather(publish_placed, publish_result, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _dead_letter(
        self, job: _Job, code: str, reason: str, command: PlaceCallCommand | None
    ) -> None:
        letter = DeadLetter(
            dead_letter_id=str(uuid.uuid4()), source="command", reason_code=code, reason=reason,
            received_at=job.received_at, record=record_ref(job.record),
        )  # fmt: skip
        await self._publisher.publish_event(
            self._settings.topics.dead_letters, letter, source=SOURCE,
            key=command.command_id if command else None,
        )  # fmt: skip
        self._metrics.dead_letters.labels("command", code).inc()

    async def _reject(self, job: _Job, error: InvalidCommand) -> None:
        """An unreadable command: dead letter, and a ``rejected`` result if it has an id."""
        command_id = readable_command_id(job.record)
        bind_log_context(command_id=command_id)
        log.warning("command rejected: %s", error.message)
        await self._dead_letter(job, error.code, error.message, None)
        if command_id is not None:
            result = PlaceCallResult(
                command_id=command_id, status=ResultStatus.REJECTED, error_code=error.code,
                error_message=error.message, received_at=job.received_at, finished_at=utcnow(),
            )  # fmt: skip
            await self._publish(result, None)
        self._metrics.commands.labels(ResultStatus.REJECTED.value).inc()


class _Job:
    """One command record being handled."""

    __slots__ = ("received_at", "record", "source", "started")

    def __init__(self, record: Record, received_at: datetime, started: float) -> None:
        self.record = record
        self.received_at = received_at
        self.started = started
        self.source = source_of(record.topic, record.partition, record.offset)
