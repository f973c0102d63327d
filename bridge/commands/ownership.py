"""Which command partitions this worker owns, in which generation, and which may start records.

Every assignment is a new generation. A partition's records may start only while it is owned
in the generation the record was fetched in and the ledger has caught up for that generation;
a task checks the same again right before it sends a request. Pure state, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import TopicPartition


class Ownership:
    """Owned partitions by generation, and the ones whose ledger catch-up is complete."""

    def __init__(self) -> None:
        self.generation = 0
        self._owned: dict[TopicPartition, int] = {}
        self._ready: set[TopicPartition] = set()

    def assign(self, partitions: Iterable[TopicPartition]) -> int:
        """New partitions (not ready until :meth:`mark_ready`); returns their generation."""
        self.generation += 1
        for tp in partitions:
            self._owned[tp] = self.generation
            self._ready.discard(tp)
        return self.generation

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions given up: nothing of theirs may start or send from now on."""
        for tp in partitions:
            self._owned.pop(tp, None)
            self._ready.discard(tp)

    def revoke_all(self) -> None:
        """Shutdown: every partition given up at once, as if revoked."""
        self._owned.clear()
        self._ready.clear()

    def mark_ready(self, partitions: Iterable[TopicPartition], generation: int) -> None:
        """The ledger caught up for ``generation``: its partitions still owned may start."""
        for tp in partitions:
            if self._owned.get(tp) == generation:
                self._ready.add(tp)

    def generation_of(self, tp: TopicPartition) -> int | None:
        """The generation ``tp`` is owned in, ``None`` when not owned."""
        return self._owned.get(tp)

    def generations(self) -> set[int]:
        """The generations some partition is still owned in."""
        return set(self._owned.values())

    def owns(self, tp: TopicPartition, generation: int) -> bool:
        """Whether ``tp`` is still owned in ``generation`` (not revoked, not re-assigned)."""
        return self._owned.get(tp) == generation

    def startable(self, tp: TopicPartition) -> bool:
        """Owned and caught up: its records may start."""
        return tp in self._ready

    def to_pause(
        self, assignment: Iterable[TopicPartition], *, accepting: bool
    ) -> set[TopicPartition]:
        """Partitions to keep paused: all when not ``accepting`` work, else those not ready."""
        if not accepting:
            return set(assignment)
        return {tp for tp in assignment if tp not in self._ready}
