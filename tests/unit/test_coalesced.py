"""``end_offsets`` coalescing: every caller gets a fetch that started after it came, and the
fetches are spaced."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from bridge.kafka.coalesced import Coalesced as _Coalesced

TP = TopicPartition("t", 0)


class Fetches:
    """A fetch that takes ``seconds`` and answers the time it started at (as the offset)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.starts: list[float] = []

    async def __call__(self) -> dict[TopicPartition, int]:
        started = asyncio.get_running_loop().time()
        self.starts.append(started)
        await asyncio.sleep(self.seconds)
        return {TP: int(started * 1_000_000)}


async def caller(coalesced: _Coalesced) -> tuple[float, float]:
    """(when it called, when the fetch it got started)."""
    called = asyncio.get_running_loop().time()
    got = await coalesced.get()
    return called, got[TP] / 1_000_000


async def test_every_caller_gets_a_fetch_that_started_after_it_came() -> None:
    fetches = Fetches(0.01)
    coalesced = _Coalesced(fetches)
    tasks = []
    for _ in range(30):
        tasks.append(asyncio.create_task(caller(coalesced)))
        await asyncio.sleep(0.002)
    results = await asyncio.gather(*tasks)
    assert all(started >= called - 1e-6 for called, started in results)
    assert len(fetches.starts) < 30  # shared


async def test_fetches_are_spaced_and_callers_still_served() -> None:
    fetches = Fetches(0.001)
    coalesced = _Coalesced(fetches, spacing=0.05)
    tasks = []
    for _ in range(50):
        tasks.append(asyncio.create_task(caller(coalesced)))
        await asyncio.sleep(0.004)  # 0.2 s of callers
    results = await asyncio.gather(*tasks)
    assert all(started >= called - 1e-6 for called, started in results)
    gaps = [b - a for a, b in zip(fetches.starts, fetches.starts[1:], strict=False)]
    assert all(gap >= 0.05 - 1e-3 for gap in gaps)
    assert len(fetches.starts) <= 6


async def test_a_lone_caller_after_a_quiet_spell_is_not_delayed() -> None:
    fetches = Fetches(0.0)
    coalesced = _Coalesced(fetches, spacing=10)
    await coalesced.get()
    fetches.starts.clear()
    coalesced._last_start -= 10
    loop = asyncio.get_running_loop()
    before = loop.time()
    await coalesced.get()
    assert loop.time() - before < 1
