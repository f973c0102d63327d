"""Which offset may be committed when commands finish out of order, across generations."""

from __future__ import annotations

from collections import deque

from aiokafka import TopicPartition


class _Partition:
    __slots__ = ("done", "generation", "pending")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.pending: deque[int] = deque()
        self.done: set[int] = set()


class OffsetTracker:
    """Per owned partition: commit up to the first offset still in flight, never past it.

    A partition is tracked from :meth:`assign` to :meth:`revoke`, in one generation: a late
    ``finished`` of an earlier generation (a task that outlived its revocation) is ignored,
    and nothing of a partition no longer owned is ever handed out for commit.
    """

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._committable: dict[TopicPartition, int] = {}

    def assign(self, tp: TopicPartition, generation: int) -> None:
        """``tp`` is owned from now on, in ``generation``."""
        self._partitions[tp] = _Partition(generation)
        self._committable.pop(tp, None)

    def revoke(self, tp: TopicPartition) -> None:
        """``tp`` is no longer owned: forget it and anything not yet committed of it."""
        self._partitions.pop(tp, None)
        self._committable.pop(tp, None)

    def started(self, tp: TopicPartition, offset: int, generation: int) -> bool:
        """A record was taken (offsets increase per partition); False when not owned."""
        partition = self._partitions.get(tp)
        if partition is None or partition.generation != generation:
            return False
        partition.pending.append(offset)
        return True

    def finished(self, tp: TopicPartition, offset: int, generation: int) -> None:
        """A record's processing is complete (its result and ledger entry are written)."""
        partition = self._partitions.get(tp)
        if partition is None or partition.generation != generation:
            return  # revoked (and perhaps re-assigned) meanwhile
        partition.done.add(offset)
        pending = partition.pending
        while pending and pending[0] in partition.done:
            first = pending.popleft()
            partition.done.discard(first)
            self._committable[tp] = first + 1

    def in_flight(self, tp: TopicPartition) -> int:
        """Records of ``tp`` taken and not finished."""
        partition = self._partitions.get(tp)
        return 0 if partition is None else len(partition.pending) - len(partition.done)

    def take_commits(self) -> dict[TopicPartition, int]:
        """Offsets to commit now (next offset to read per partition); cleared once taken."""
        commits, self._committable = self._committable, {}
        return commits

    def restore(self, commits: dict[TopicPartition, int]) -> None:
        """Put back offsets whose commit failed, unless newer ones or a revocation came since."""
        for tp, offset in commits.items():
            if tp in self._partitions and tp not in self._committable:
                self._committable[tp] = offset
