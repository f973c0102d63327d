"""What to do with a command, from what the ledger knows: a pure function, tested as a table.

The processor (:mod:`bridge.commands.processor`) only performs the action decided here; see
:mod:`bridge.commands.ledger` for why the ledger makes "at most one call per command" hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState

Delivery = Literal["at-most-once", "at-least-once"]

#: Share of ``BRIDGE_WORKER__LEDGER_RETENTION`` between refusing a command as ``too_old`` and
#: forgetting its ledger entries. The two ages come from different clocks (a command's
#: timestamp is its producer's, a ledger record's its worker's or broker's, Kafka deletes
#: segments by the broker's), so without a margin a skew between them lets a copy of a
#: command be accepted after its entries were forgotten. A share, not an absolute figure, so
#: it keeps refusing before forgetting for any retention.
CLOCK_MARGIN_SHARE = 0.1


@dataclass(frozen=True)
class Republish:
    """This very record was finished before the crash that kept its offset: publish again."""

    result: PlaceCallResult


@dataclass(frozen=True)
class Finish:
    """End the command without a call."""

    status: ResultStatus
    error_code: str
    message: str
    call_id: str | None = None
    #: Also write a dead letter with ``error_code`` as its reason code.
    dead_letter: bool = False


@dataclass(frozen=True)
class Place:
    """Place the call."""

    #: An earlier attempt was interrupted mid-request and at-least-once allows another.
    again: bool = False


Action = Republish | Finish | Place


def decide(
    command: PlaceCallCommand,
    entry: LedgerEntry | None,
    *,
    source: str,
    now: datetime,
    written_at: datetime | None,
    retention: float,
    delivery: Delivery,
    refusal: tuple[str, str] | None,
) -> Action:
    """The action for ``command`` read from the record ``source`` (written at ``written_at``).

    ``entry`` is the ledger's latest entry for the command id, after the ledger has caught up
    with everything written before the command's partition was assigned to this worker.
    ``refusal`` is why the call must not be placed (``(error_code, message)`` from
    :func:`bridge.commands.destinations.refusal`), or None: it turns a ``Place`` into a
    ``rejected`` result with a dead letter, and changes nothing else (a finished command is
    still republished or a duplicate, an expired one still expired).
    """
    if entry is not None and entry.state is LedgerState.DONE and entry.result is not None:
        if entry.source == source:
            return Republish(entry.result)
        done = entry.result
        return Finish(
            ResultStatus.DUPLICATE,
            "duplicate",
            f"command_id already finished as {done.status.value}",
            call_id=done.call_id,
        )
    if entry is not None and entry.state is not LedgerState.DONE:
        unfinished = _unfinished(command, entry, source=source, now=now, delivery=delivery)
        if unfinished is not None:
            return unfinished or _place(refusal, again=True)
    refuse_after = retention * (1 - CLOCK_MARGIN_SHARE)
    if (
        entry is None
        and written_at is not None
        and now - written_at > timedelta(seconds=refuse_after)
    ):
        # The ledger forgets command ids after the retention, so it cannot tell whether this
        # one was placed: an offset reset or a replayed backlog must not ring anyone twice.
        return Finish(
            ResultStatus.EXPIRED,
            "too_old",
            f"the command was written at {written_at.isoformat()}, longer ago than the ledger "
            f"surely remembers command ids ({refuse_after:g}s: "
            f"BRIDGE_WORKER__LEDGER_RETENTION={retention:g}s less a margin for clock skew), "
            "so whether it was placed is unknown; not placed",
        )
    return _unless_expired(command, now) or _place(refusal)


def _unfinished(
    command: PlaceCallCommand, entry: LedgerEntry, *, source: str, now: datetime, delivery: Delivery
) -> Finish | Literal[False] | None:
    """For ``placing`` or ``pending``: a finish, False to place again, None to place as new."""
    if entry.source != source:
        # A copy of a command that another record (another key, partition or producer retry)
        # is placing: that record's handling reports the call; placing here could ring twice.
        return Finish(
            ResultStatus.DUPLICATE,
            "duplicate",
            f"command_id is being placed from record {entry.source}",
        )
    if entry.state is not LedgerState.PLACING:
        return None
    if delivery == "at-most-once":
        return Finish(
            ResultStatus.IN_DOUBT,
            "in_doubt",
            "an earlier attempt was interrupted during the create-call request; the call "
            "may or may not have been placed",
        )
    return _unless_expired(command, now) or False


def _place(refusal: tuple[str, str] | None, *, again: bool = False) -> Place | Finish:
    if refusal is not None:
        code, message = refusal
        return Finish(ResultStatus.REJECTED, code, message, dead_letter=True)
    return Place(again=again)


def _unless_expired(command: PlaceCallCommand, now: datetime) -> Finish | None:
    if command.not_after is not None and command.not_after <= now:
        return Finish(
            ResultStatus.EXPIRED,
            "expired",
            f"not_after {command.not_after.isoformat()} has passed",
        )
    return None


def after_conflict(
    latest: LedgerEntry | None, *, source: str, call_possible: bool
) -> Republish | Finish | None:
    """Another job wrote the command's ledger entry meanwhile (``latest``): how this one ends.

    Nothing is sent and nothing written to the ledger: the other job's entries stand. None
    means this record's result is the other job's to publish (it handles the same record and
    has not finished); a :class:`Republish` is that job's result, published again in case it
    stopped before it could; otherwise the result to publish. ``call_possible``: an attempt of
    this job may have created the call, which only ``in_doubt`` may say.
    """
    if latest is not None and latest.source == source:
        # Another worker holds this very record (this one kept it past a rebalance it missed).
        if latest.state is LedgerState.DONE and latest.result is not None:
            return Republish(latest.result)
        return None
    if call_possible:
        return Finish(
            ResultStatus.IN_DOUBT,
            "in_doubt",
            "an earlier attempt may have created the call, and another record of this "
            f"command_id ({_source(latest)}) took it over",
        )
    if latest is not None and latest.state is LedgerState.DONE and latest.result is not None:
        return Finish(
            ResultStatus.DUPLICATE,
            "duplicate",
            f"command_id already finished as {latest.result.status.value}",
            call_id=latest.result.call_id,
        )
    return Finish(
        ResultStatus.DUPLICATE,
        "duplicate",
        f"command_id is being placed from record {_source(latest)}",
    )


def _source(entry: LedgerEntry | None) -> str:
    return "unknown" if entry is None else entry.source
