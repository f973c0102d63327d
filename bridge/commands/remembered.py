"""What the ledger remembers of each command, at a few dozen bytes per command id.

A worker remembers every command id of one retention window (``BRIDGE_WORKER__LEDGER_RETENTION``,
seven days by default): millions of them. Whole entries (their JSON) cost about a kilobyte each,
so they are kept only while a job may need them at once: for :data:`FULL_FOR` seconds after
they were written (a copy of a command, a redelivery after a crash) and for as long as the
command is unfinished (``placing``, ``pending``). An older ``done`` is kept as a 64-bit hash of
its command id mapped to its ledger record (partition, offset) and its result's status, packed
into one integer in an open-addressing table of ``array('q')``; its expiry waits in a ring of
arrays. A job that needs the whole entry reads that one record back from the ledger topic.

Hash collisions. The hash is Python's ``hash()`` of the id (SipHash, keyed at random per
process), so which ids collide is chance, not something a producer can aim at. For ``n`` ids
the odds that any two share a hash are about ``n**2 / 2**65``: 3e-8 for a million, 3e-6 for ten
million, per worker and retention window. A collision errs one way only: an id can look like
another remembered one (whose entry, read back, has another key: the command is then taken as
finished, its details unknown), never like an unknown one, for an id's hash stays in the table
at least until the id itself expires: a slot is emptied only when the last id written into it
expires. So a collision can end a new command as a duplicate; it never places a command twice.
A tombstone (an operator forgetting a command) also forgets an id that shares its hash.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from bridge.contracts.commands import ResultStatus
from bridge.contracts.ledger import LedgerState

#: Seconds a ``done`` entry is kept whole after it was written, before only its place is:
#: long enough for copies sent at once and a redelivery after a rebalance; whole entries cost
#: about a kilobyte each for this long at the command rate.
FULL_FOR = 60.0

#: Higher ranks win across partitions: ``done`` is terminal, and ``placing`` (a call may
#: exist) is not hidden by ``pending`` (none does) from another partition.
RANK = {LedgerState.PENDING: 1, LedgerState.PLACING: 2, LedgerState.DONE: 3}
_STATUSES = list(ResultStatus)
_OFFSET_BITS = 44
_STATUS_BITS = 3
_PARTITION_LIMIT = 1 << (63 - _OFFSET_BITS - _STATUS_BITS)
_OFFSET_LIMIT = 1 << _OFFSET_BITS
#: Shards of the table: growing one rehashes 1/256 of the ids, so no pause grows with them.
_SHARD_BITS = 8
_MAX_LOAD = 0.7


class Known(NamedTuple):
    """The latest entry remembered for a command id."""

    partition: int
    offset: int
    state: LedgerState
    #: The result's status of a ``done`` (None for other states, or a ``done`` without one).
    status: ResultStatus | None
    #: The entry's JSON; None when only its place is kept (a ``done`` read back when needed).
    value: bytes | None


def replaces(known: Known | None, partition: int, offset: int, state: LedgerState | None) -> bool:
    """Whether a record (``state`` None: a tombstone) takes the place of the ``known`` entry.

    Within a partition the log orders a command's records: the later offset wins (our own
    write, applied when acknowledged, is not replaced by reading it back), except that a
    ``done`` and an unfinished entry after it on the log (nothing writes one after a command's
    outcome but a worker paused past its session between its last check and its write) leave
    the ``done``, whichever is read first: an own write applied at once may come before the
    read of a ``done`` that precedes it. Across partitions
    (partitions added to the ledger move a key's new records to another partition) nothing
    orders them, so the state decides: a record replaces an entry of the same or a lower
    :data:`RANK`, so ``done`` is never replaced by an unfinished entry and ``placing`` not by
    ``pending``; a tombstone replaces nothing there.
    """
    if known is None:
        return True
    if known.partition == partition:
        if state is LedgerState.DONE and known.state is not LedgerState.DONE:
            return offset != known.offset
        if state is not None and known.state is LedgerState.DONE:
            return state is LedgerState.DONE and offset > known.offset
        return offset > known.offset
    return state is not None and RANK[state] >= RANK[known.state]


def _hash(command_id: str) -> int:
    # 0 marks an empty slot.
    return hash(command_id) or 1


def _pack(partition: int, offset: int, status: ResultStatus) -> int:
    return (
        (partition << (_OFFSET_BITS + _STATUS_BITS))
        | (offset << _STATUS_BITS)
        | _STATUSES.index(status)
    )


def _unpack(packed: int) -> Known:
    return Known(
        packed >> (_OFFSET_BITS + _STATUS_BITS),
        (packed >> _STATUS_BITS) & (_OFFSET_LIMIT - 1),
        LedgerState.DONE,
        _STATUSES[packed & ((1 << _STATUS_BITS) - 1)],
        None,
    )


class Shard:
    """Open addressing with linear probing over two arrays; deletion shifts back (no marks)."""

    __slots__ = ("count", "keys", "mask", "values")

    def __init__(self, capacity: int = 8) -> None:
        self._allocate(capacity)

    def _allocate(self, capacity: int) -> None:
        self.keys = array("q", bytes(8 * capacity))
        self.values = array("q", bytes(8 * capacity))
        self.mask = capacity - 1
        self.count = 0

    def _slot(self, key: int) -> int:
        keys, mask = self.keys, self.mask
        i = key & mask
        while keys[i] != key and keys[i] != 0:
            i = (i + 1) & mask
        return i

    def get(self, key: int) -> int:
        i = self._slot(key)
        return self.values[i] if self.keys[i] == key else -1

    def put(self, key: int, value: int) -> None:
        if (self.count + 1) > _MAX_LOAD * (self.mask + 1):
            self._grow()
        i = self._slot(key)
        if self.keys[i] == 0:
            self.keys[i] = key
            self.count += 1
        self.values[i] = value

    def delete(self, key: int) -> None:
        i = self._slot(key)
        if self.keys[i] != key:
            return
        keys, values, mask = self.keys, self.values, self.mask
        j = i
        while True:
            j = (j + 1) & mask
            moving = keys[j]
            if moving == 0:
                break
            # It may fill the hole at i if i lies on its probe path (from its home to j).
            if (j - moving) & mask >= (j - i) & mask:
                keys[i], values[i] = moving, values[j]
                i = j
        keys[i] = values[i] = 0
        self.count -= 1

    def _grow(self) -> None:
        keys, values = self.keys, self.values
        self._allocate(2 * (self.mask + 1))
        for key, value in zip(keys, values, strict=True):
            if key:
                self.put(key, value)


class _Index:
    """64-bit hash of a command id -> packed place and status of its ``done``, sharded."""

    def __init__(self) -> None:
        self._shards = [Shard() for _ in range(1 << _SHARD_BITS)]

    def _shard(self, key: int) -> Shard:
        return self._shards[(key >> (64 - _SHARD_BITS)) & ((1 << _SHARD_BITS) - 1)]

    def get(self, key: int) -> int:
        return self._shard(key).get(key)

    def put(self, key: int, value: int) -> None:
        self._shard(key).put(key, value)

    def delete(self, key: int) -> None:
        self._shard(key).delete(key)

    def __len__(self) -> int:
        return sum(shard.count for shard in self._shards)


class _Ring:
    """(expiry second, key, packed value) in the order put: a FIFO of three arrays."""

    def __init__(self) -> None:
        self.expires = array("I")
        self.keys = array("q")
        self.values = array("q")
        self.head = 0

    def append(self, expires: float, key: int, value: int) -> None:
        # Rounded up: forgetting a moment late is safe, early is not.
        self.expires.append(min(max(math.ceil(expires), 0), 0xFFFFFFFF))
        self.keys.append(key)
        self.values.append(value)

    def pop_expired(self, now: float) -> list[tuple[int, int]]:
        """The (key, value) pairs whose expiry is past, oldest first, taken off the ring."""
        start = head = self.head
        expires, end = self.expires, len(self.expires)
        while head < end and expires[head] < now:
            head += 1
        popped = list(zip(self.keys[start:head], self.values[start:head], strict=True))
        self.head = head
        if head > 4096 and 2 * head > end:
            for column in (self.expires, self.keys, self.values):
                del column[:head]
            self.head = 0
        return popped

    def __len__(self) -> int:
        return len(self.expires) - self.head


class Remembered:
    """The latest entry of each command id of one retention window.

    ``hash_id`` keys the compact index (never 0); a test can make ids collide with it.
    """

    def __init__(
        self,
        retention: float,
        *,
        full_for: float = FULL_FOR,
        hash_id: Callable[[str], int] = _hash,
    ) -> None:
        self._hash = hash_id
        self._retention = retention
        self._full_for = min(full_for, retention)
        # Whole entries: command id -> (partition, offset, state, status, JSON).
        self._full: dict[str, Known] = {}
        # (written at, command id, partition, offset) of whole entries, in the order put.
        self._recent: deque[tuple[float, str, int, int]] = deque()
        # The same for unfinished entries past FULL_FOR: kept whole until the retention.
        self._unfinished: deque[tuple[float, str, int, int]] = deque()
        self._index = _Index()
        self._expiry = _Ring()

    def lookup(self, command_id: str) -> Known | None:
        """The latest entry remembered for ``command_id`` (by hash, past :data:`FULL_FOR`)."""
        known = self._full.get(command_id)
        if known is not None:
            return known
        packed = self._index.get(self._hash(command_id))
        return None if packed < 0 else _unpack(packed)

    def put(self, command_id: str, known: Known, *, written_at: float, now: float) -> None:
        """Remember ``known`` as the command's latest entry (the caller checked it replaces)."""
        if written_at < now - self._full_for and self._compact(command_id, known, written_at):
            return
        self._full[command_id] = known
        self._recent.append((written_at, command_id, known.partition, known.offset))

    def forget(self, command_id: str) -> None:
        """Forget the command (a tombstone): its whole entry and its hash."""
        self._full.pop(command_id, None)
        self._index.delete(self._hash(command_id))

    def expire(self, now: float) -> None:
        """Keep only the place of ``done`` entries past :data:`FULL_FOR`; forget those past
        the retention (amortised O(1) per entry)."""
        cutoff, full_cutoff = now - self._retention, now - self._full_for
        recent, full = self._recent, self._full
        while recent and recent[0][0] < full_cutoff:
            item = written_at, command_id, partition, offset = recent.popleft()
            known = full.get(command_id)
            if known is None or (known.partition, known.offset) != (partition, offset):
                continue  # replaced since
            if written_at < cutoff:
                del full[command_id]
            elif not self._compact(command_id, known, written_at):
                self._unfinished.append(item)
        unfinished = self._unfinished
        while unfinished and unfinished[0][0] < cutoff:
            _, command_id, partition, offset = unfinished.popleft()
            known = full.get(command_id)
            if known is not None and (known.partition, known.offset) == (partition, offset):
                del full[command_id]
        index = self._index
        for key, value in self._expiry.pop_expired(now):
            if index.get(key) == value:  # no id written into the slot since
                index.delete(key)

    def _compact(self, command_id: str, known: Known, written_at: float) -> bool:
        """Keep only the place of a ``done``; False when it must stay whole."""
        if (
            known.state is not LedgerState.DONE
            or known.status is None
            or not 0 <= known.partition < _PARTITION_LIMIT
            or not 0 <= known.offset < _OFFSET_LIMIT
        ):
            return False
        key, packed = self._hash(command_id), _pack(known.partition, known.offset, known.status)
        self._full.pop(command_id, None)
        self._index.put(key, packed)
        self._expiry.append(written_at + self._retention, key, packed)
        return True

    def __len__(self) -> int:
        """Command ids remembered (an id both whole and by hash, rare, counts twice)."""
        return len(self._full) + len(self._index)

    def sizes(self) -> tuple[int, int, int]:
        """(whole entries, ids kept by hash, expiries waiting): for tests and benchmarks."""
        return len(self._full), len(self._index), len(self._expiry)
