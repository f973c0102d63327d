"""Admission: what a command waits for before an attempt, and which attempts may send.

One per worker process: per-command locks (copies in one process run one after the other),
the slots that bound how many commands have ``placing`` written with no answer and how many
requests are out, the rate limit, and the gate that lets one probe through while FoneStorm
refuses our token. The processor's attempt loop asks for its turn here and does the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from bridge.commands.auth_gate import AuthGate
from bridge.commands.jobs import Job
from bridge.commands.rate_limit import RateLimiter
from bridge.settings import WorkerSettings

#: Commands with ``placing`` written and no answer yet, per slot of MAX_IN_FLIGHT: enough to
#: keep the slots busy through the ledger write and the correlation hold (together about as
#: long as a request), and no more, for each is ``in_doubt`` if its worker dies.
PLACING_PER_SLOT = 2


class Admission:
    """Locks, slots, rate limit and auth gate of one worker process."""

    def __init__(
        self, settings: WorkerSettings, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._limiter = RateLimiter(settings.rate_limit, clock=monotonic)
        # MAX_IN_FLIGHT bounds the requests out at once; the worker holds more commands than
        # that (IN_HAND_PER_SLOT), so ledger writes and holds do not leave requests idle.
        self._sending = asyncio.Semaphore(settings.max_in_flight)
        self._placing = asyncio.Semaphore(PLACING_PER_SLOT * settings.max_in_flight)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._lock_users: defaultdict[str, int] = defaultdict(int)
        self.auth = AuthGate(settings.auth_retry_interval, clock=monotonic)

    @asynccontextmanager
    async def exclusive(self, command_id: str) -> AsyncIterator[None]:
        """The command id to this task alone among the copies handled in this process."""
        # The lock is dropped with its last user so the map does not grow with every command.
        self._lock_users[command_id] += 1
        try:
            async with self._locks[command_id]:
                yield
        finally:
            self._lock_users[command_id] -= 1
            if not self._lock_users[command_id]:
                del self._lock_users[command_id]
                del self._locks[command_id]

    @asynccontextmanager
    async def turn(self, job: Job) -> AsyncIterator[None]:
        """An attempt's turn: the probe while the token is refused, a rate-limit token, and
        for a command not yet on the ledger one of the ``placing`` slots."""
        async with self.auth.admit():
            if job.placing:
                # A retry with ``placing`` on the ledger: in_doubt if this worker dies now, so
                # it goes first, and needs no slot of those that bound how many are exposed.
                await self._limiter.acquire(urgent=True)
                yield
                return
            async with self._placing:
                await self._limiter.acquire()
                yield

    @asynccontextmanager
    async def sending(self) -> AsyncIterator[None]:
        """One of the ``BRIDGE_WORKER__MAX_IN_FLIGHT`` request slots."""
        async with self._sending:
            yield
