"""Waiting in a test until something holds; the deadline only turns a hang into a failure."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], what: str = "", timeout: float = 30.0
) -> None:
    """Until ``check()`` (a function or a coroutine function) holds; fails naming ``what`` when
    it still does not after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        held = check()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        await asyncio.sleep(0.02)
