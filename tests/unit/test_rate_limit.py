"""The create-call rate limiter: urgent waiters first, the rate kept, a cancel costs nothing."""

from __future__ import annotations

import asyncio

import pytest

from bridge.commands.rate_limit import RateLimiter


async def _served(limiter: RateLimiter, who: list[tuple[str, bool]]) -> list[str]:
    """The order in which waiters (name, urgent), queued in this order, get their tokens."""
    order: list[str] = []

    async def wait(name: str, urgent: bool) -> None:
        await limiter.acquire(urgent=urgent)
        order.append(name)

    tasks = []
    for name, urgent in who:
        tasks.append(asyncio.create_task(wait(name, urgent)))
        await asyncio.sleep(0)  # queued in this order
    await asyncio.gather(*tasks)
    return order


@pytest.mark.parametrize(
    ("who", "served"),
    [
        ([("a", False), ("b", False), ("c", False)], ["a", "b", "c"]),
        ([("a", False), ("b", False), ("retry", True)], ["retry", "a", "b"]),
        ([("r1", True), ("a", False), ("r2", True)], ["r1", "r2", "a"]),
    ],
)
async def test_urgent_waiters_go_first_and_the_rest_keep_their_order(
    who: list[tuple[str, bool]], served: list[str]
) -> None:
    limiter = RateLimiter(50)
    for _ in range(50):  # empty the bucket: everyone below waits
        await limiter.acquire()
    assert await _served(limiter, who) == served


async def test_the_rate_is_kept_after_the_first_burst() -> None:
    clock = asyncio.get_running_loop().time
    limiter = RateLimiter(40)
    for _ in range(40):
        await limiter.acquire()
    started = clock()
    for _ in range(8):
        await limiter.acquire()
    # 8 tokens at 40/s take 200 ms; a lower bound only (a busy machine is slower, never faster).
    assert clock() - started >= 0.19


async def test_a_rate_below_one_a_second_still_grants_one_at_a_time() -> None:
    limiter = RateLimiter(0.5)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_a_cancelled_waiter_takes_no_token() -> None:
    limiter = RateLimiter(20)
    for _ in range(20):
        await limiter.acquire()
    gone = asyncio.create_task(limiter.acquire(urgent=True))
    await asyncio.sleep(0)
    stays = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.wait_for(stays, 1.0)  # the first token after the cancel is the next waiter's
    assert gone.cancelled()
