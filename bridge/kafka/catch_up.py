"""How far a follower has read a topic, and rounds that wait until it has read up to the end.

:class:`~bridge.kafka.follower.TopicFollower` reads; this is what its waiters see of that read,
apart from Kafka: the read reports its positions after each batch (:meth:`CatchUp.advance`),
and a *round* asks the topic's end offsets (one ``ListOffsets``) and waits until the read has
reached them. Callers share rounds through :class:`~bridge.kafka.coalesced.Coalesced`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from bridge.kafka.coalesced import Coalesced
from bridge.kafka.end_offsets import Offsets

#: Rounds (ListOffsets, then reading up to its answer) under way at once, at most.
MAX_ROUNDS_IN_FLIGHT = 2


class CatchUp:
    """Waits on a read of a topic whose end offsets ``end_offsets()`` fetches.

    ``spacing`` (seconds) is the least time between two rounds (see :meth:`caught_up`).
    ``on_round`` is told how long (seconds) each round that succeeded took to prove. ``clock``
    is ``time.monotonic`` or a stand-in for it (what :attr:`proven` is measured on).
    """

    def __init__(
        self,
        end_offsets: Callable[[], Awaitable[Offsets]],
        *,
        spacing: float = 0.0,
        on_round: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "catch-up",
    ) -> None:
        self._end_offsets = end_offsets
        self._on_round = on_round
        self._clock = clock
        self._positions: Offsets = {}
        self._progress = asyncio.Event()
        self._rounds = Coalesced(
            self._round, spacing=spacing, at_once=MAX_ROUNDS_IN_FLIGHT, name=name
        )
        # When (clock()) the latest round whose end offsets have been reached was sent.
        self._proven = -math.inf

    @property
    def positions(self) -> Offsets:
        """The offset of the next record to apply, per partition read."""
        return self._positions

    def advance(self, positions: Offsets) -> None:
        """The read has applied every record before ``positions`` (a batch, possibly empty)."""
        self._positions = positions
        # Wake every waiter, then give later ones a fresh event.
        self._progress.set()
        self._progress = asyncio.Event()

    def reached(self, ends: Offsets) -> bool:
        """Whether everything before ``ends`` has been applied."""
        positions = self._positions
        return all(positions.get(tp, -1) >= end for tp, end in ends.items())

    async def wait_for(self, ends: Offsets, until: Callable[[], bool] = lambda: False) -> None:
        """Until everything before ``ends`` has been applied, or ``until()`` holds."""
        while not until() and not self.reached(ends):
            await self._progress.wait()

    async def progress(self) -> None:
        """Until the next batch (possibly empty) has been applied."""
        await self._progress.wait()

    async def end_offsets(self) -> Offsets:
        """The offset after the last record of every partition, as of a moment after this call,
        once everything before them has been applied (a round: see :meth:`caught_up`)."""
        return await self._rounds.get()

    def caught_up(self) -> asyncio.Future[Offsets]:
        """Done once everything written to the topic before this call has been applied.

        For many callers at once (one per callback), each costing one future: the callers
        that come before a round starts share it. A round is one ``ListOffsets``, then reading
        up to its answer. A round starts at most once per ``spacing`` and does not wait for
        the one before it to be answered (two at most under way), so a caller waits for the
        spacing and one round trip (rounds one after the other made the callers that came
        during a round wait for two). Fails as ``end_offsets()`` does.
        """
        return self._rounds.get()

    @property
    def proven(self) -> float:
        """Everything written before this moment (on the ``clock``) has been applied.

        Known without a round trip from the rounds already answered: the send time of the
        latest round whose end offsets have been reached (``-inf`` before the first).
        """
        return self._proven

    def refresh(self, older_than: float) -> None:
        """Start a round with no caller if none is under way and the proof is that old (s).

        Keeps :attr:`proven` recent while callers ask it often, so they need not wait, at
        one round per ``older_than`` and round trip. Rounds that fail (Kafka away) prove
        nothing: still one per spacing at most.
        """
        if self._clock() - self._proven >= older_than:
            self._rounds.refresh()

    async def stop(self) -> None:
        """Cancel the callers waiting for a round and the rounds under way."""
        await self._rounds.stop()

    async def _round(self) -> Offsets:
        sent = self._clock()  # the request leaves later: a safe bound
        ends = await self._end_offsets()  # sent after every caller of the round came
        await self.wait_for(ends)
        self._proven = max(self._proven, sent)
        if self._on_round is not None:
            self._on_round(self._clock() - sent)
        return ends
