"""``Coalesced``: callers share the next fetch, each gets one that started after it came, and
the fetches are spaced and bounded. On virtual time: every time below is exact."""

from __future__ import annotations

import asyncio

import pytest

from bridge.kafka.coalesced import Coalesced
from tests.support.virtual_time import run

#: Slack for float sums of virtual times (the loop runs a timer up to 1 ns early).
EPSILON = 1e-6


class Fetches:
    """A fetch that takes ``seconds`` and answers the time it started at."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.starts: list[float] = []
        self.under_way = self.most_under_way = 0
        self.failing: Exception | None = None

    async def __call__(self) -> float:
        started = asyncio.get_running_loop().time()
        self.starts.append(started)
        self.under_way += 1
        self.most_under_way = max(self.most_under_way, self.under_way)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.under_way -= 1
        if self.failing is not None:
            raise self.failing
        return started


async def caller(coalesced: Coalesced[float]) -> tuple[float, float]:
    """(when it called, when the fetch it got started)."""
    called = asyncio.get_running_loop().time()
    return called, await coalesced.get()


async def callers(
    coalesced: Coalesced[float], count: int, every: float
) -> list[tuple[float, float]]:
    """``count`` callers, one every ``every`` seconds; what :func:`caller` says of each."""
    tasks = []
    for _ in range(count):
        tasks.append(asyncio.create_task(caller(coalesced)))
        await asyncio.sleep(every)
    return await asyncio.gather(*tasks)


def test_every_caller_gets_a_fetch_that_started_after_it_came() -> None:
    fetches = Fetches(0.01)

    async def main() -> list[tuple[float, float]]:
        return await callers(Coalesced(fetches), 30, 0.002)

    results = run(main)
    assert all(started >= called for called, started in results)
    # One fetch under way at a time, each 10 ms, over 60 ms of callers: shared.
    assert len(fetches.starts) <= 0.06 / 0.01 + 1
    assert fetches.most_under_way == 1


def test_callers_of_one_loop_turn_share_a_fetch() -> None:
    fetches = Fetches(0.01)

    async def main() -> list[float]:
        coalesced = Coalesced(fetches)
        return await asyncio.gather(*(coalesced.get() for _ in range(100)))

    assert run(main) == [0.0] * 100
    assert fetches.starts == [0.0]


def test_fetches_are_spaced_and_callers_still_served() -> None:
    fetches = Fetches(0.001)

    async def main() -> list[tuple[float, float]]:
        return await callers(Coalesced(fetches, spacing=0.05), 50, 0.004)  # 0.2 s of callers

    results = run(main)
    assert all(started >= called for called, started in results)
    gaps = [b - a for a, b in zip(fetches.starts, fetches.starts[1:], strict=False)]
    assert all(gap >= 0.05 - EPSILON for gap in gaps)
    assert len(fetches.starts) == 5  # at 0, 0.05, ..., 0.2


def test_a_lone_caller_after_a_quiet_spell_is_not_delayed() -> None:
    fetches = Fetches(0.0)

    async def main() -> tuple[float, float]:
        coalesced = Coalesced(fetches, spacing=10)
        await coalesced.get()
        await asyncio.sleep(10)
        return await caller(coalesced)

    called, started = run(main)
    assert started == called


def test_a_fetch_starts_without_waiting_for_the_one_under_way() -> None:
    fetches = Fetches(0.1)

    async def main() -> None:
        coalesced = Coalesced(fetches, spacing=0.01, at_once=2)
        first = coalesced.get()
        await asyncio.sleep(0.03)  # the first fetch is under way until 0.1
        second = coalesced.get()
        await asyncio.sleep(0)
        assert not first.done()
        await asyncio.gather(first, second)

    run(main)
    assert fetches.starts == [0.0, pytest.approx(0.03)]  # not after the first was answered


def test_at_most_at_once_fetches_are_under_way_and_spaced() -> None:
    fetches = Fetches(0.1)

    async def main() -> list[tuple[float, float]]:
        # A caller every 5 ms, each fetch 100 ms, at most one start per 10 ms.
        return await callers(Coalesced(fetches, spacing=0.01, at_once=2), 60, 0.005)

    results = run(main)
    assert all(started >= called for called, started in results)
    assert fetches.most_under_way == 2
    # Two fetches per round trip (0.3 s of callers, then the last ones' fetch), not one per
    # spacing.
    assert len(fetches.starts) <= 2 * 0.4 / 0.1 + 1


def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    fetches = Fetches(0.01)

    async def main() -> float:
        coalesced = Coalesced(fetches)
        first, second = coalesced.get(), coalesced.get()
        first.cancel()
        return await second

    assert run(main) == 0.0


def test_a_failed_fetch_fails_its_callers_and_the_next_ones_try_again() -> None:
    fetches = Fetches(0.01)
    fetches.failing = ConnectionError("down")

    async def main() -> float:
        coalesced = Coalesced(fetches)
        with pytest.raises(ConnectionError):
            await coalesced.get()
        fetches.failing = None
        return await coalesced.get()

    assert run(main) == pytest.approx(0.01)
    assert len(fetches.starts) == 2


def test_refresh_starts_a_fetch_only_when_none_is_under_way_or_due_and_spaced() -> None:
    fetches = Fetches(0.1)

    async def main() -> None:
        coalesced = Coalesced(fetches, spacing=0.5, at_once=2)
        for _ in range(10):
            coalesced.refresh()  # one under way: no other
            await asyncio.sleep(0)
        await asyncio.sleep(0.2)  # answered, but the spacing is not over
        coalesced.refresh()
        await asyncio.sleep(0.35)
        coalesced.refresh()
        caller = coalesced.get()  # came after that fetch started: waits for one of its own
        assert await caller == pytest.approx(1.05)

    run(main)
    assert fetches.starts == [0.0, pytest.approx(0.55), pytest.approx(1.05)]


def test_stop_cancels_the_callers_of_fetches_under_way_and_due() -> None:
    fetches = Fetches(0.1)

    async def main() -> None:
        coalesced = Coalesced(fetches, spacing=1.0, at_once=2)
        under_way = coalesced.get()
        await asyncio.sleep(0.01)
        due = coalesced.get()  # at 1.0
        await coalesced.stop()
        for stopped in (under_way, due):
            with pytest.raises(asyncio.CancelledError):
                await stopped
        await asyncio.sleep(2)

    run(main)
    assert fetches.starts == [0.0]
