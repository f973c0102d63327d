"""Claiming a command on the ledger: a compare-and-set by reading one's own write back.

Kafka has no conditional write, but the ledger is one log per command (its key), read in order
by every worker. A job (one handling of a command record) therefore writes first and checks
after: it watches the command's records from the moment it read the ledger
(:meth:`~bridge.commands.ledger.Ledger.watch`), writes, reads its write back, and the write
counts only if no record of another writer lies between what it had read and its write. Of
two jobs that read the same state and both write, exactly one wins: the one whose record came
first. The loser sends nothing, writes nothing of its own again, and puts the winner's latest
entry back on top of its own (:func:`restore`), so readers see the winner's state.

Partitions added to the ledger put a command's records on two partitions, which nothing
orders: a record on another partition than the one compared with counts as another writer's
(unless it is the job's own), that is, as a conflict. Two jobs may then both lose; never both
place (:meth:`~bridge.commands.ledger.Ledger.read_back` reads every partition). So that such a
command still gets an outcome, a loser marks the entry it puts back with its own writer and
those it lost to (a withdrawal). A job that sees every writer it lost to withdraw in its favour
knows that no claim won (of two claims, the one read back last sees the other's record as a
conflict): it records the command ``failed`` (``claim_conflict``), nothing called, to be sent
again.

The window checks are pure functions over what the watch saw; :class:`Claims` does the I/O
for the processor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.structs import RecordMetadata

from bridge.commands import decision
from bridge.commands.jobs import Job, Phase
from bridge.commands.ledger import NOWHERE, Ledger, Position, Seen, Watch
from bridge.commands.outcomes import OutcomeWriter
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState

log = logging.getLogger(__name__)

#: Rounds of :func:`restore` at most: each answers a record another writer added meanwhile.
RESTORE_ROUNDS = 5
#: Seconds between looks for the withdrawals of the jobs a claim lost to.
WITHDRAWAL_POLL = 0.05
CLAIM_CONFLICT = "claim_conflict"


def is_ours(seen: Seen, writer: str) -> bool:
    """Written by the job ``writer`` (or a copy of its entry that a loser put back)."""
    return seen.entry is not None and seen.entry.writer == writer


def _after(seen: Seen, position: Position) -> bool:
    """Whether the record may have come after ``position``: on another partition it may."""
    return seen.partition != position.partition or seen.offset > position.offset


def foreign(seen: list[Seen], *, writer: str, after: Position) -> list[Seen]:
    """Records of other writers after ``after``, in log order."""
    return [s for s in seen if _after(s, after) and not is_ours(s, writer)]


def lost(seen: list[Seen], *, writer: str, after: Position) -> list[Seen]:
    """Why a write read back lost: other writers' records between ``after`` and its first copy.

    Empty when it won. A write retried after an error may be on the log twice: the first
    counts. A record on a partition that holds no copy of the write before it counts too.
    Only valid once the write has been read back (it is in ``seen``).
    """
    ours = [s for s in seen if _after(s, after) and is_ours(s, writer)]
    return [
        s
        for s in foreign(seen, writer=writer, after=after)
        if not any(o.partition == s.partition and o.offset < s.offset for o in ours)
    ]


def to_put_back(seen: list[Seen], *, writer: str, copied: set[bytes]) -> LedgerEntry | None:
    """The entry to write on top after a lost claim, or None when the log already ends in it.

    That is the newest entry another writer wrote itself; ``copied`` holds the values this job
    already put back, whose records are not originals.
    """
    target = newest_original(seen, writer=writer, copied=copied)
    if target is None:
        return None
    return None if _value(seen[-1].entry) == _value(target) else target


def newest_original(seen: list[Seen], *, writer: str, copied: set[bytes]) -> LedgerEntry | None:
    """The newest entry another writer wrote itself (not a copy this job put back)."""
    originals = [s for s in seen if not is_ours(s, writer) and _value(s.entry) not in copied]
    return originals[-1].entry if originals else None


def lost_to(beaten_by: list[Seen]) -> frozenset[str]:
    """The writers of the records a claim lost to; empty when one of them names none."""
    writers = {s.entry.writer if s.entry is not None else None for s in beaten_by}
    if None in writers:
        return frozenset()  # an unreadable or older entry: nobody to wait for
    return frozenset(w for w in writers if w is not None)


def withdrew(seen: list[Seen], *, writer: str, others: frozenset[str]) -> bool:
    """Whether every writer in ``others`` withdrew its claim, having lost to ``writer``'s."""
    said = {
        s.entry.withdrawn_by
        for s in seen
        if s.entry is not None and s.entry.withdrawn_by and writer in s.entry.lost_to
    }
    return bool(others) and others <= said


def _value(entry: LedgerEntry | None) -> bytes:
    """An entry as compared: a withdrawal's marks do not make its copy another entry."""
    if entry is None:
        return b""
    if entry.withdrawn_by is not None:
        entry = entry.model_copy(update={"withdrawn_by": None, "lost_to": []})
    return entry.model_dump_json().encode()


async def restore(
    ledger: Ledger,
    watch: Watch,
    *,
    writer: str,
    write: Callable[[LedgerEntry], Awaitable[RecordMetadata]],
    withdrawal: frozenset[str] | None = None,
) -> None:
    """After a lost claim: put the winner's latest entry back on top of this job's writes.

    With ``withdrawal`` (the writers the claim lost to), the first copy says so, written even
    when the log already ends in that entry. Bounded: another writer adding records meanwhile
    is answered for :data:`RESTORE_ROUNDS` rounds at most; after that the winner's own next
    record puts its state on top anyway.
    """
    copied: set[bytes] = set()
    for _ in range(RESTORE_ROUNDS):
        entry = to_put_back(watch.seen, writer=writer, copied=copied)
        if entry is None and withdrawal:
            entry = newest_original(watch.seen, writer=writer, copied=copied)
        if entry is None:
            return
        copied.add(_value(entry))
        if withdrawal:
            entry = entry.model_copy(update={"withdrawn_by": writer, "lost_to": sorted(withdrawal)})
            withdrawal = None
        await ledger.read_back(await write(entry))
    log.warning("the ledger entry of another writer could not be put back on top")


def verified(job: Job) -> Position:
    """Where the window of a job's next write starts: after what it read and its last write.

    Another job's record before the job's own last write was either written over by it (an
    entry that stops the job, :meth:`Claims.overwritten`, is found by the read before each
    attempt) or a ``placing`` that lost its claim to this job's: neither can win.
    """
    # Every write of the job comes after what it read: its latest write is the later point.
    return job.accepted if job.last_write == NOWHERE else job.last_write


class Claims:
    """The ledger side of a job that may meet another: claim, look, stand down."""

    def __init__(
        self,
        ledger: Ledger,
        out: OutcomeWriter,
        *,
        hold: float,
        withdrawal_wait: float,
        monotonic: Callable[[], float],
    ) -> None:
        self._ledger = ledger
        self._out = out
        self._hold = hold
        self._withdrawal_wait = withdrawal_wait
        self._monotonic = monotonic

    async def claim(self, job: Job, command: PlaceCallCommand) -> bool:
        """Write ``placing`` and read it back: whether this job won the command.

        The correlation hold runs meanwhile: no callback of this call may reach a receiver
        sooner, so one that has read the ledger as of this long before a callback knows of
        this placement and answers callbacks of other calls at once.
        """
        since = verified(job)
        job.placing = True  # set first: a write that fails may still have landed
        written = await self._out.state(job, command, LedgerState.PLACING)
        await asyncio.gather(self._ledger.read_back(written), asyncio.sleep(self._hold))
        beaten_by = lost(job.watch.seen, writer=job.writer, after=since)
        if beaten_by:
            last = beaten_by[-1].entry
            log.warning(
                "another writer took the command on the ledger first (%s); not placing it",
                last.source if last else "an unreadable entry",
            )
            if any(s.partition != written.partition for s in beaten_by):
                # Unordered against this write: the other claim may have lost to it as well.
                job.lost_to = lost_to(beaten_by)
            await restore(
                self._ledger,
                job.watch,
                writer=job.writer,
                write=self._out.put_back,
                withdrawal=job.lost_to,
            )
            return False
        job.accepted = Position(written.partition, written.offset)
        return True

    async def counted(self, job: Job, written: RecordMetadata, *, since: Position) -> bool:
        """Read the job's write back: whether it came before any other job's (else put back).

        ``since``: :func:`verified` as it was before the write.
        """
        await self._ledger.read_back(written)
        if not lost(job.watch.seen, writer=job.writer, after=since):
            job.accepted = Position(written.partition, written.offset)
            return True
        log.warning("another worker recorded the command first; its outcome stands")
        await restore(self._ledger, job.watch, writer=job.writer, write=self._out.put_back)
        return False

    @staticmethod
    def overwritten(job: Job) -> list[Seen]:
        """Entries another job wrote over this one's since it last looked.

        Another job's ``placing`` does not count: written after this job's read, it loses
        its claim to this one's or wins over it, which :meth:`claim` tells.
        """
        return [
            s
            for s in foreign(job.watch.seen, writer=job.writer, after=job.accepted)
            if s.entry is None or s.entry.state is not LedgerState.PLACING
        ]

    async def stand_down(self, job: Job, command: PlaceCallCommand) -> PlaceCallResult | None:
        """Another job wrote this command's entry: send nothing, write nothing to the ledger.

        Returns the result published, or None when it is the other job's to publish.
        """
        job.phase = Phase.RECORDING
        if await self._all_withdrew(job):
            return await self._claim_conflict(job, command)
        others = foreign(job.watch.seen, writer=job.writer, after=job.accepted)
        decisive = self.overwritten(job) or others
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

    async def _all_withdrew(self, job: Job) -> bool:
        """After a lost claim: whether every job it lost to lost as well (within the wait)."""
        if not job.lost_to:
            return False
        deadline = self._monotonic() + self._withdrawal_wait
        while not withdrew(job.watch.seen, writer=job.writer, others=job.lost_to):
            if self._monotonic() >= deadline:
                return False
            await asyncio.sleep(WITHDRAWAL_POLL)
        return True

    async def _claim_conflict(self, job: Job, command: PlaceCallCommand) -> PlaceCallResult:
        """No claim won: ``failed``, nothing called, the command kept to be sent again."""
        await job.fenced()
        message = (
            "another record of this command claimed it at the same moment, on another ledger "
            "partition, and both claims lost: nothing was called; send the command again"
        )
        log.warning("command %s: %s", CLAIM_CONFLICT, message)
        result = self._out.result(
            job, command, ResultStatus.FAILED, error_code=CLAIM_CONFLICT, error_message=message
        )
        await self._out.record(job, command, result, dead_letter=(CLAIM_CONFLICT, message))
        await self._out.announce(result, command)
        return result
