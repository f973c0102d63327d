"""Writing what became of a command: dead letter, ledger ``done``, result, ``CallPlaced``.

Every write is retried until Kafka takes it (for as long as the job lives: the worker bounds
that on revoke and shutdown); the command is never decided again once its outcome is known.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.structs import RecordMetadata

from bridge.commands.destinations import dialled, parse
from bridge.commands.jobs import Job, Revoked
from bridge.commands.ledger import Ledger, Position
from bridge.commands.records import dead_letter_copies, readable_command_id
from bridge.commands.trimming import ELLIPSIS, TRIM_LIMITS, trimmed
from bridge.contracts.base import utcnow
from bridge.contracts.calls import WORKER_SOURCE, CallPlaced, placed_event_id
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult, ResultStatus
from bridge.contracts.dead_letters import DeadLetter
from bridge.contracts.ledger import LedgerEntry, LedgerState
from bridge.errors import InvalidCommand, PublishError, RecordRejected
from bridge.kafka.publisher import Publisher
from bridge.obs.logs import bind_log_context
from bridge.obs.metrics import Metrics
from bridge.retrying import retry
from bridge.settings import Settings

log = logging.getLogger(__name__)

SOURCE = WORKER_SOURCE
#: Characters of an invalid command's id its log lines carry: as many as a valid id has.
MAX_COMMAND_ID = 128
T = TypeVar("T")


class OutcomeWriter:
    """The worker's writes to Kafka about one command."""

    def __init__(
        self, settings: Settings, publisher: Publisher, ledger: Ledger, metrics: Metrics
    ) -> None:
        self._settings = settings
        self._publisher = publisher
        self._ledger = ledger
        self._metrics = metrics

    async def settle(
        self,
        job: Job,
        command: PlaceCallCommand,
        result: PlaceCallResult,
        *,
        dead_letter: tuple[str, str] | None = None,
    ) -> None:
        """Dead letter, ledger ``done``, then the result: each retried until written."""
        await self.record(job, command, result, dead_letter=dead_letter)
        await self.announce(result, command)

    async def record(
        self,
        job: Job,
        command: PlaceCallCommand,
        result: PlaceCallResult,
        *,
        dead_letter: tuple[str, str] | None = None,
    ) -> RecordMetadata | None:
        """The dead letter and the ledger's ``done`` (None for a duplicate, which has none)."""
        if dead_letter is not None:
            code, reason = dead_letter
            await self.until_written(
                "the dead letter", lambda: self.dead_letter(job, code, reason, command.command_id)
            )
        if result.status is ResultStatus.DUPLICATE:
            # A duplicate is another record's command: its entry stays the one that counts.
            return None
        done = self._entry(job, command, LedgerState.DONE, result)
        written = await self.until_written("the ledger entry", lambda: self._ledger.record(done))
        job.last_write = Position(written.partition, written.offset)
        return written

    async def announce(self, result: PlaceCallResult, command: PlaceCallCommand) -> None:
        """The result (and a placed call's ``CallPlaced``), after :meth:`record`."""
        # A crash from here on republishes the same result (same ce_id) from the ledger.
        await self.until_written("the result", lambda: self.publish(result, command))
        log.info(
            "command %s (call %s, %d attempts)",
            result.status.value,
            result.call_id,
            result.attempts,
        )

    async def until_written(self, what: str, write: Callable[[], Awaitable[T]]) -> T:
        # Kafka unreachable is retried for as long as this task lives (the worker bounds that
        # on revoke and shutdown); a record Kafka refuses is a bug and is raised.
        return await retry(
            write,
            retry_on=PublishError,
            what=f"writing {what}",
            unless=lambda exc: isinstance(exc, RecordRejected),
        )

    def result(
        self,
        job: Job,
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

    async def state(
        self, job: Job, command: PlaceCallCommand, state: LedgerState
    ) -> RecordMetadata:
        """Record ``placing`` or ``pending`` on the ledger (retried until written).

        The caller checked the job's fence; a retry, maybe long after, checks it again and
        raises :class:`Revoked` if it no longer holds: the partition's next owner may have
        written since.
        """
        attempts = 0

        async def write() -> RecordMetadata:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                if state is LedgerState.PLACING:
                    await job.fenced()
                elif not job.proven():
                    raise Revoked
            return await self.mark(job, command, state)

        return await self.until_written("the ledger entry", write)

    async def mark(self, job: Job, command: PlaceCallCommand, state: LedgerState) -> RecordMetadata:
        written = await self._ledger.record(self._entry(job, command, state))
        job.last_write = Position(written.partition, written.offset)
        return written

    async def put_back(self, entry: LedgerEntry) -> RecordMetadata:
        """Write another job's ``entry`` again, as it was (see :func:`claim.restore`)."""
        return await self.until_written("the ledger entry", lambda: self._ledger.record(entry))

    def _entry(
        self,
        job: Job,
        command: PlaceCallCommand,
        state: LedgerState,
        result: PlaceCallResult | None = None,
    ) -> LedgerEntry:
        # The numbers as FoneStorm's callbacks will name them (E.164): receivers hold back only
        # the outbound callbacks whose pair has a placement in flight.
        region = self._settings.callbacks.default_region
        fonenumber, to = parse(command.fonenumber, region), parse(command.to, region)
        return LedgerEntry(
            command_id=command.command_id,
            state=state,
            source=job.source,
            result=result,
            updated_at=utcnow(),
            fonenumber=fonenumber.e164 if fonenumber else None,
            to=to.e164 if to else None,
            writer=job.writer,
        )

    async def publish(self, result: PlaceCallResult, command: PlaceCallCommand | None) -> None:
        publish_result = self._publish_result(result)
        if result.status is not ResultStatus.PLACED or not result.call_id or command is None:
            await publish_result
            return
        publish_placed = self.placed(result, command)
        # Two topics, no order between them for consumers anyway: one round trip, not two.
        outcomes = await asyncio.gather(publish_placed, publish_result, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _publish_result(self, result: PlaceCallResult) -> None:
        """The result; cut (see :mod:`bridge.commands.trimming`) if Kafka refuses it whole."""
        topic = self._settings.topics.place_call_results
        try:
            await self._publisher.publish_event(topic, result, source=SOURCE)
        except RecordRejected as exc:
            refused = exc
        else:
            return
        for limit in TRIM_LIMITS:
            smaller = trimmed(result, limit)
            if smaller is None:
                continue
            log.warning(
                "%s; publishing the result with its fields cut to %d characters",
                refused.message,
                limit,
            )
            try:
                await self._publisher.publish_event(topic, smaller, source=SOURCE)
            except RecordRejected as exc:
                refused = exc
            else:
                return
        raise refused

    async def placed(
        self, result: PlaceCallResult, command: PlaceCallCommand, *, reconciled: bool = False
    ) -> None:
        """The ``CallPlaced`` event of a placed result's call."""
        assert result.call_id is not None  # noqa: S101 - only placed results have one
        # As dialled (E.164), as a reconciled CallPlaced has them: one form for consumers to join.
        try:
            fonenumber, to = dialled(command, self._settings.callbacks.default_region)
        except ValueError:  # placed, so dialable then; kept as sent should that ever change
            fonenumber, to = command.fonenumber, command.to
        placed = CallPlaced(
            event_id=placed_event_id(result.call_id),
            call_id=result.call_id,
            command_id=result.command_id,
            correlation_id=result.correlation_id,
            fonenumber=fonenumber,
            to=to,
            placed_at=result.finished_at,
            reconciled=reconciled,
        )
        topic = self._settings.topics.call_events
        await self._publisher.publish_event(topic, placed, source=SOURCE)

    async def dead_letter(self, job: Job, code: str, reason: str, key: str | None) -> None:
        topic = self._settings.topics.dead_letters
        signing_key = self._settings.dead_letters.key_for("command")
        dead_letter_id = str(uuid.uuid4())  # one id, whichever copy Kafka takes
        refused: RecordRejected | None = None
        # Too large for this cluster's limit: the next copy keeps less (a producer can make the
        # value, the key or the headers huge).
        for record, note in dead_letter_copies(job.record):
            letter = DeadLetter(
                dead_letter_id=dead_letter_id,
                source="command",
                reason_code=code,
                reason=reason if note is None else f"{reason} {note}",
                received_at=job.received_at,
                record=record,
            )
            try:
                await self._publisher.publish_event(
                    topic, letter, source=SOURCE, key=key, signing_key=signing_key
                )
            except RecordRejected as exc:
                refused = exc
            else:
                refused = None
                break
        if refused is not None:
            raise refused
        self._metrics.dead_letters.labels("command", code).inc()

    async def reject(self, job: Job, error: InvalidCommand) -> None:
        """An unreadable command: dead letter, and a ``rejected`` result if it has an id."""
        command_id = readable_command_id(job.record)
        # Any length (the record's key, say): every log line of the command carries it.
        shown = command_id
        if shown is not None and len(shown) > MAX_COMMAND_ID:
            shown = shown[:MAX_COMMAND_ID] + ELLIPSIS
        bind_log_context(command_id=shown)
        log.warning("command rejected: %s", error.message)
        await self.until_written(
            "the dead letter", lambda: self.dead_letter(job, error.code, error.message, None)
        )
        if command_id is not None:
            result = PlaceCallResult(
                command_id=command_id,
                status=ResultStatus.REJECTED,
                error_code=error.code,
                error_message=error.message,
                received_at=job.received_at,
                finished_at=utcnow(),
            )
            await self.until_written("the result", lambda: self.publish(result, None))
        self._metrics.commands.labels(ResultStatus.REJECTED.value).inc()
