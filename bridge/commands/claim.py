"""Claiming a command on the ledger: a compare-and-set by reading one's own write back.

Kafka has no conditional write, but the ledger is one log per command (its key), read in order
by every worker. A job (one handling of a command record) therefore writes first and checks
after: it watches the command's records from the moment it read the ledger
(:meth:`~bridge.commands.ledger.Ledger.watch`), writes, reads its write back, and the write
counts only if no record of another writer lies between what it had read and its write. Of
two jobs that read the same state and both write, exactly one wins: the one whose record came
first. The loser sends nothing, writes nothing of its own again, and puts the winner's latest
entry back on top of its own (:func:`restore`), so readers see the winner's state.

The window checks are pure functions over what the watch saw; the processor does the I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiokafka.structs import RecordMetadata

from bridge.commands.ledger import Ledger, Seen, Watch
from bridge.contracts.ledger import LedgerEntry

log = logging.getLogger(__name__)

#: Rounds of :func:`restore` at most: each answers a record another writer added meanwhile.
RESTORE_ROUNDS = 5


def is_ours(seen: Seen, writer: str) -> bool:
    """Written by the job ``writer`` (or a copy of its entry that a loser put back)."""
    return seen.entry is not None and seen.entry.writer == writer


def foreign(seen: list[Seen], *, writer: str, after: int) -> list[Seen]:
    """Records of other writers after offset ``after``, in log order."""
    return [s for s in seen if s.offset > after and not is_ours(s, writer)]


def lost(seen: list[Seen], *, writer: str, after: int) -> list[Seen]:
    """Why a write read back lost: other writers' records between ``after`` and its first copy.

    Empty when it won. A write retried after an error may be on the log twice: the first
    counts. Only valid once the write has been read back (it is in ``seen``).
    """
    first = min((s.offset for s in seen if s.offset > after and is_ours(s, writer)), default=None)
    return [
        s for s in foreign(seen, writer=writer, after=after) if first is None or s.offset < first
    ]


def to_put_back(seen: list[Seen], *, writer: str, copied: set[bytes]) -> LedgerEntry | None:
    """The entry to write on top after a lost claim, or None when the log already ends in it.

    That is the newest entry another writer wrote itself; ``copied`` holds the values this job
    already put back, whose records are not originals.
    """
    originals = [s for s in seen if not is_ours(s, writer) and _value(s.entry) not in copied]
    if not originals or originals[-1].entry is None:
        return None
    target = originals[-1].entry
    return None if _value(seen[-1].entry) == _value(target) else target


def _value(entry: LedgerEntry | None) -> bytes:
    return b"" if entry is None else entry.model_dump_json().encode()


async def restore(
    ledger: Ledger,
    watch: Watch,
    *,
    writer: str,
    write: Callable[[LedgerEntry], Awaitable[RecordMetadata]],
) -> None:
    """After a lost claim: put the winner's latest entry back on top of this job's writes.

    Bounded: another writer adding records meanwhile is answered for :data:`RESTORE_ROUNDS`
    rounds at most; after that the winner's own next record puts its state on top anyway.
    """
    copied: set[bytes] = set()
    for _ in range(RESTORE_ROUNDS):
        entry = to_put_back(watch.seen, writer=writer, copied=copied)
        if entry is None:
            return
        copied.add(_value(entry))
        await ledger.read_back(await write(entry))
    log.warning("the ledger entry of another writer could not be put back on top")
