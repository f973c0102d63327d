"""``Deadlines``: asyncio.timeout's behaviour, with one timer per tick. On virtual time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.deadlines import Deadlines
from tests.support.virtual_time import VirtualTimeLoop, run


class CountingLoop(VirtualTimeLoop):
    """Counts the timers scheduled on it."""

    def __init__(self) -> None:
        super().__init__()
        self.timers = 0

    def call_at(self, when: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        self.timers += 1
        return super().call_at(when, *args, **kwargs)


def test_a_scope_that_ends_in_time_is_left_alone() -> None:
    async def main() -> None:
        deadlines = Deadlines(0.05, tick=0.01)
        with deadlines():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # its tick fires after the scope ended: nothing happens
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    run(main)


def test_a_scope_that_overruns_raises_timeout_error_at_the_next_tick() -> None:
    async def main() -> float:
        deadlines = Deadlines(0.05, tick=0.02)
        with pytest.raises(TimeoutError), deadlines():
            await asyncio.sleep(10)
        raised_at = asyncio.get_running_loop().time()
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        await asyncio.sleep(0)  # and the task is not cancelled later
        return raised_at

    # The tick is a tenth of the timeout (5 ms): never early, late by a tick at most.
    assert 0.05 <= run(main) <= 0.055


def test_scopes_in_one_tick_share_one_timer() -> None:
    loop = CountingLoop()

    async def main() -> None:
        deadlines = Deadlines(0.05, tick=0.5)
        before = loop.timers
        for _ in range(100):
            with deadlines():
                pass
        assert loop.timers - before == 1

    run(main, loop)


def test_someone_elses_cancellation_stays_a_cancellation() -> None:
    async def main() -> None:
        deadlines = Deadlines(10)

        async def inside() -> None:
            with deadlines():
                await asyncio.sleep(10)

        task = asyncio.create_task(inside())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
