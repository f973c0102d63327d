"""Which offset may be committed when commands finish out of order."""

from __future__ import annotations

from collections import deque

from aiokafka import TopicPartition


class OffsetTracker:
    """Per partition: commit up to the first offset still in flight, never past it."""

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, deque[int]] = {}
        self._done: dict[TopicPartition, set[int]] = {}
        self._committable: dict[TopicPartition, int] = {}

    def started(self, tp: TopicPartition, offset: int) -> None:
        """A record was taken (offsets arrive in increasing order per partition)."""
        self._pending.setdefault(tp, deque()).append(offset)
        self._done.setdefault(tp, set())

    def finished(self, tp: TopicPartition, offset: int) -> None:
        """A record's processing is complete (its result and ledger entry are written)."""
        pending = self._pending.get(tp)
        if pending is None:
            return  # partition was revoked meanwhile
        done = self._done[tp]
        done.add(offset)
        while pending and pending[0] in done:
            first = pending.popleft()
            done.discard(first)
            self._committable[tp] = first + 1

    def in_flight(self, tp: TopicPartition) -> int:
        """Records of ``tp`` taken and not finished."""
        return len(self._pending.get(tp, ())) - len(self._done.get(tp, ()))

    def take_commits(self) -> dict[TopicPartition, int]:
        """Offsets to commit now (next offset to read per partition); cleared once taken."""
        commits, self._committable = self._committable, {}
        return commits

    def restore(self, commits: dict[TopicPartition, int]) -> None:
        """Put back offsets whose commit failed, unless newer ones or a revocation came since."""
        for tp, offset in commits.items():
            if tp in self._pending and tp not in self._committable:
                self._committable[tp] = offset

    def forget(self, tp: TopicPartition) -> None:
        """Drop a revoked partition."""
        self._pending.pop(tp, None)
        self._done.pop(tp, None)
        self._committable.pop(tp, None)
