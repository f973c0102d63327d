"""``Deadlines``: asyncio.timeout's behaviour, with one timer per tick."""

from __future__ import annotations

import asyncio

import pytest

from bridge.deadlines import Deadlines


async def test_a_scope_that_ends_in_time_is_left_alone() -> None:
    deadlines = Deadlines(0.05, tick=0.01)
    with deadlines():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # its tick fires after the scope ended: nothing happens
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_scope_that_overruns_raises_timeout_error_at_most_a_tick_late() -> None:
    deadlines = Deadlines(0.05, tick=0.02)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError), deadlines():
        await asyncio.sleep(10)
    assert 0.05 <= loop.time() - started < 0.05 + 0.02 + 0.5  # never early; late by a tick
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0)  # and the task is not cancelled later


async def test_scopes_in_one_tick_share_one_timer() -> None:
    deadlines = Deadlines(0.05, tick=0.5)
    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    for _ in range(100):
        with deadlines():
            pass
    assert len(loop._scheduled) - before <= 2  # type: ignore[attr-defined]


async def test_someone_elses_cancellation_stays_a_cancellation() -> None:
    deadlines = Deadlines(10)

    async def inside() -> None:
        with deadlines():
            await asyncio.sleep(10)

    task = asyncio.create_task(inside())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
