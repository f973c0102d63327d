"""An asyncio event loop on virtual time: nothing waits, so a schedule replays exactly.

The loop's selector never blocks: asked to wait, it advances the virtual clock to the next
timer instead. Code that does no real I/O (the protocol simulation, unit tests of timing)
runs in an order that depends only on its input, and a test asserts on times exactly. A loop
with nothing ready and no timer is a deadlock, raised as such.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):
    """Every task waits for something that nothing will ever do."""


class _NoWaitSelector(selectors.BaseSelector):
    def __init__(self) -> None:
        self._keys: dict[int, selectors.SelectorKey] = {}
        self.loop: VirtualTimeLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        assert self.loop is not None
        if timeout is None:
            raise Deadlock("no task can run and no timer is due")
        if timeout > 0:
            self.loop.advance(timeout)
        return []

    def get_map(self) -> dict[int, selectors.SelectorKey]:  # type: ignore[override]
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``time()`` is virtual; it moves only when every task waits for a timer."""

    def __init__(self) -> None:
        selector = _NoWaitSelector()
        self._virtual = 0.0
        super().__init__(selector)
        selector.loop = self

    def time(self) -> float:
        return self._virtual

    def advance(self, seconds: float) -> None:
        """Move the clock on (the selector does, when nothing is ready)."""
        self._virtual += seconds


def run(main: Callable[[], Coroutine[Any, Any, T]], loop: VirtualTimeLoop | None = None) -> T:
    """``main()`` to its end on ``loop``, closed after (a fresh one by default: clock at 0)."""
    loop = VirtualTimeLoop() if loop is None else loop
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
