"""Timeouts for the per-callback path: one timer per tick of deadlines, not one per call.

``asyncio.timeout()`` schedules a timer and cancels it on every call, a noticeable share of
what a callback costs the receiver, for a produce timeout that almost never fires.
:class:`Deadlines` puts every scope whose deadline falls in the same tick (50 ms) behind one
timer. A scope times out as ``asyncio.timeout`` does (its task is cancelled, and the
cancellation becomes ``TimeoutError`` on the way out, unless someone else cancelled the task
too), up to one tick late.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

#: Seconds of deadlines that share one timer (at most): a scope may time out this much late.
TICK = 0.05


class Deadlines:
    """Scopes (``with deadlines():``) that time out ``seconds`` after they were entered.

    The tick is at most a tenth of ``seconds``, so a short timeout is not made much longer.
    """

    def __init__(self, seconds: float, *, tick: float = TICK) -> None:
        self.seconds = seconds
        self._tick = min(tick, seconds / 10) if seconds > 0 else tick
        self._ticks: dict[int, list[Deadline]] = {}

    def __call__(self) -> Deadline:
        """A scope for the current task, timing out ``seconds`` from now."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadlines must be used inside a task")
        return Deadline(self, task)

    def _add(self, deadline: Deadline, loop: asyncio.AbstractEventLoop) -> None:
        tick = math.ceil((loop.time() + self.seconds) / self._tick)
        scopes = self._ticks.get(tick)
        if scopes is None:
            scopes = self._ticks[tick] = []
            loop.call_at(tick * self._tick, self._expire, tick)
        scopes.append(deadline)

    def _expire(self, tick: int) -> None:
        for deadline in self._ticks.pop(tick, ()):
            deadline.expire()


class Deadline:
    """One scope of :class:`Deadlines`; raises ``TimeoutError`` when it expired inside."""

    __slots__ = ("_cancelling", "_owner", "_task", "expired")

    def __init__(self, owner: Deadlines, task: asyncio.Task[object]) -> None:
        self._owner = owner
        self._task: asyncio.Task[object] | None = task
        self._cancelling = 0
        self.expired = False

    def __enter__(self) -> Deadline:
        assert self._task is not None  # noqa: S101 - entered once
        self._cancelling = self._task.cancelling()
        self._owner._add(self, self._task.get_loop())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None  # from here on, expiry passes this scope by
        # As asyncio.timeout: our cancellation is taken back, and becomes a timeout unless
        # someone else cancelled the task as well.
        if (
            self.expired
            and task is not None
            and task.uncancel() <= self._cancelling
            and kind is asyncio.CancelledError
        ):
            raise TimeoutError from exc

    def expire(self) -> None:
        """Cancel the task if it is still inside the scope."""
        task = self._task
        if task is not None and not task.done():
            self.expired = True
            task.cancel()
