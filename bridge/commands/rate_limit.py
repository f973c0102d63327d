"""The create-call rate limit: a token bucket that serves urgent waiters first.

A command retrying after an ambiguous answer has ``placing`` on the ledger: if its worker dies
while it waits, the next owner must report it ``in_doubt``. In a FIFO limiter it waited behind
every fresh command in hand (at 5 requests/s and 256 in hand, 50 s), and the chaos soak's
``in_doubt`` count rose with the number of commands in hand. Here such a waiter is *urgent*
and takes the next token; fresh commands keep their order among themselves.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable


class RateLimiter:
    """At most ``rate`` acquisitions a second, in bursts of up to ``max(1, rate)``."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._stamp = clock()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self, *, urgent: bool = False) -> None:
        """Wait for a token; ``urgent`` waiters are served before the others."""
        self._refill()
        if not self._waiters and self._tokens >= 1:
            self._tokens -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (0 if urgent else 1, next(self._order), future))
        self._schedule()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Granted, then cancelled before it ran: the token goes to the next waiter.
                self._tokens = min(self._capacity, self._tokens + 1)
                self._grant()
            raise

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def _grant(self) -> None:
        if self._timer is not None:  # called early (a returned token): one timer at a time
            self._timer.cancel()
            self._timer = None
        self._refill()
        while self._waiters and self._tokens >= 1:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():  # a cancelled waiter takes nothing
                self._tokens -= 1
                future.set_result(None)
        self._schedule()

    def _schedule(self) -> None:
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)
        if self._waiters and self._timer is None:
            delay = max(0.0, (1 - self._tokens) / self._rate)
            self._timer = asyncio.get_running_loop().call_later(delay, self._grant)
