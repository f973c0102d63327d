"""Coalesced requests: one in flight, spaced, and every caller served by a fetch that started
after it came (what :meth:`bridge.kafka.follower.TopicFollower.end_offsets` needs).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalesced(Generic[T]):
    """At most one ``fetch()`` in flight, and one start per ``spacing`` seconds; callers wait
    for a fetch that started after they came."""

    def __init__(self, fetch: Callable[[], Awaitable[T]], spacing: float = 0.0) -> None:
        self._fetch = fetch
        self._spacing = spacing
        self._running: asyncio.Future[T] | None = None
        self._next: asyncio.Future[T] | None = None
        self._launching = False
        self._last_start = -math.inf

    async def get(self) -> T:
        if self._next is None:
            loop = asyncio.get_running_loop()
            if self._running is None and loop.time() >= self._last_start + self._spacing:
                self._running = self._start()
                return await asyncio.shield(self._running)
            self._next = loop.create_future()
            if self._running is None:
                self._launch_later()
        return await asyncio.shield(self._next)

    def _start(self) -> asyncio.Future[T]:
        self._last_start = asyncio.get_running_loop().time()
        running = asyncio.ensure_future(self._fetch())
        running.add_done_callback(self._finished)
        return running

    def _finished(self, done: asyncio.Future[T]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have given up already
        self._running = None
        if self._next is not None:
            self._launch_later()

    def _launch_later(self) -> None:
        if not self._launching:
            self._launching = True
            loop = asyncio.get_running_loop()
            loop.call_at(max(loop.time(), self._last_start + self._spacing), self._launch)

    def _launch(self) -> None:
        self._launching = False
        waiting, self._next = self._next, None
        if waiting is None:
            return
        self._running = running = self._start()

        def hand_over(result: asyncio.Future[T]) -> None:
            if waiting.done():
                return
            if result.cancelled():
                waiting.cancel()
            elif (exc := result.exception()) is not None:
                waiting.set_exception(exc)
                waiting.exception()
            else:
                waiting.set_result(result.result())

        running.add_done_callback(hand_over)
