"""Coalesced requests: callers share the next one, spaced, and each is served by a request that
started after it came (what :class:`bridge.kafka.follower.TopicFollower` needs of its
``ListOffsets`` rounds and metadata requests).
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from bridge.tasks import cancel_and_wait

T = TypeVar("T")


class Coalesced(Generic[T]):
    """Callers that come before a ``fetch()`` starts share it; each gets its result.

    A fetch starts at most once per ``spacing`` seconds (of the event loop's clock) and does
    not wait for the one before it to be answered, but at most ``at_once`` are under way.
    Callers that come within one turn of the loop share a fetch even when none is under way.
    """

    def __init__(
        self,
        fetch: Callable[[], Coroutine[Any, Any, T]],
        *,
        spacing: float = 0.0,
        at_once: int = 1,
        name: str = "coalesced",
    ) -> None:
        self._fetch = fetch
        self._spacing = spacing
        self._at_once = at_once
        self._name = name
        # The callers of the next fetch; when it starts; the fetches under way.
        self._next: asyncio.Future[T] | None = None
        self._launch: asyncio.TimerHandle | None = None
        self._last_start = -math.inf
        self._running: set[asyncio.Task[T]] = set()

    def get(self) -> asyncio.Future[T]:
        """The result of the next fetch to start, in a future of the caller's own.

        Cancelling it leaves the fetch and the other callers alone; it costs one future, so
        that many callers at once need no task each.
        """
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self._schedule()
        return asyncio.shield(self._next)

    def refresh(self) -> None:
        """Start a fetch no caller waits for, if none is under way or due and the spacing
        allows (callers that come later still wait for one of their own)."""
        if (
            not self._running
            and self._launch is None
            and asyncio.get_running_loop().time() >= self._last_start + self._spacing
        ):
            self._start()

    async def stop(self) -> None:
        """Cancel the callers of the next fetch and every fetch under way."""
        # Callers first: with none left, a cancelled fetch schedules no other.
        waiting, self._next = self._next, None
        if waiting is not None:
            waiting.cancel()
        if self._launch is not None:
            self._launch.cancel()
            self._launch = None
        for running in list(self._running):
            await cancel_and_wait(running)

    def _schedule(self) -> None:
        if self._next is not None and self._launch is None and len(self._running) < self._at_once:
            loop = asyncio.get_running_loop()
            self._launch = loop.call_at(
                max(loop.time(), self._last_start + self._spacing), self._start_next
            )

    def _start_next(self) -> None:
        self._launch = None
        waiting, self._next = self._next, None
        running = self._start()
        if waiting is not None:
            running.add_done_callback(functools.partial(_hand_over, waiting))

    def _start(self) -> asyncio.Task[T]:
        self._last_start = asyncio.get_running_loop().time()
        running = asyncio.create_task(self._fetch(), name=self._name)
        self._running.add(running)
        running.add_done_callback(self._finished)
        return running

    def _finished(self, done: asyncio.Task[T]) -> None:
        self._running.discard(done)
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have given up already
        self._schedule()


def _hand_over(waiting: asyncio.Future[T], result: asyncio.Future[T]) -> None:
    if waiting.done():
        return
    if result.cancelled():
        waiting.cancel()
    elif (exc := result.exception()) is not None:
        waiting.set_exception(exc)
        waiting.exception()  # retrieved: every caller may have given up already
    else:
        waiting.set_result(result.result())
