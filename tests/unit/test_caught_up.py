"""``TopicFollower.caught_up``: many waiters, one round trip, each released once caught up."""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition

from bridge.kafka.follower import TopicFollower
from bridge.settings import KafkaSettings

TP = TopicPartition("t", 0)


class Follower(TopicFollower):
    """The follower's waiting logic over a fake topic: ``end`` is written, ``read`` applied."""

    def __init__(self) -> None:
        super().__init__(KafkaSettings(), "t", lambda record: None)
        self.end = 0
        self.requests = 0

    async def _fetch_end_offsets(self) -> dict[TopicPartition, int]:
        self.requests += 1
        await asyncio.sleep(0.01)
        return {TP: self.end}

    def read_to(self, offset: int) -> None:
        self._positions = {TP: offset}
        self._progress.set()
        self._progress = asyncio.Event()


async def test_waiters_share_a_request_and_wait_until_read() -> None:
    follower = Follower()
    follower.read_to(0)
    follower.end = 5
    waiters = [follower.caught_up() for _ in range(100)]
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiters)  # offsets 0-4 are not read yet
    follower.read_to(5)
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert follower.requests == 1


async def test_a_cancelled_waiter_does_not_disturb_the_others() -> None:
    follower = Follower()
    follower.read_to(0)
    first, second = follower.caught_up(), follower.caught_up()
    first.cancel()
    await asyncio.wait_for(second, 1)


async def test_a_failed_request_fails_its_waiters_and_the_next_ones_try_again() -> None:
    follower = Follower()
    follower.read_to(0)

    async def broken() -> dict[TopicPartition, int]:
        raise ConnectionError("down")

    follower._fetch_end_offsets = broken  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(follower.caught_up(), 1)
    except ConnectionError:
        pass
    else:
        raise AssertionError("expected the request's error")
    del follower._fetch_end_offsets
    await asyncio.wait_for(follower.caught_up(), 1)


class SlowFollower(Follower):
    """Round trips of 100 ms, rounds at most every 10 ms."""

    def __init__(self) -> None:
        super().__init__()
        self._spacing = 0.01

    async def _fetch_end_offsets(self) -> dict[TopicPartition, int]:
        self.requests += 1
        await asyncio.sleep(0.1)
        return {TP: self.end}


async def test_a_round_starts_without_waiting_for_the_one_in_flight() -> None:
    follower = SlowFollower()
    follower.read_to(0)
    first = follower.caught_up()
    await asyncio.sleep(0.03)  # the first round is in flight until 0.1
    second = follower.caught_up()
    await asyncio.sleep(0.03)
    assert follower.requests == 2  # started at ~0.03, not after the first was answered
    assert not first.done()
    await asyncio.wait_for(asyncio.gather(first, second), 1)


async def test_rounds_start_at_most_once_per_spacing() -> None:
    follower = SlowFollower()
    follower.read_to(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiters = [follower.caught_up() for _ in range(50)]  # together: one round
    for _ in range(50):  # then one caller per loop turn or so
        await asyncio.sleep(0)
        waiters.append(follower.caught_up())
    while loop.time() - started < 0.05:
        await asyncio.sleep(0.001)
        waiters.append(follower.caught_up())
    elapsed = loop.time() - started
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert follower.requests <= elapsed / 0.01 + 1


async def test_stop_cancels_the_waiters_of_rounds_in_flight() -> None:
    follower = SlowFollower()
    follower.read_to(0)
    waiter = follower.caught_up()
    await asyncio.sleep(0.02)
    await follower.stop()
    assert waiter.cancelled()


async def test_at_most_two_rounds_in_flight() -> None:
    follower = SlowFollower()
    follower.read_to(0)
    in_flight = most = 0
    fetch = follower._fetch_end_offsets

    async def counted() -> dict[TopicPartition, int]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await fetch()
        finally:
            in_flight -= 1

    follower._fetch_end_offsets = counted  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiters = []
    for _ in range(30):  # a caller every 10 ms or so, each round trip 100 ms
        waiters.append(follower.caught_up())
        await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert most == 2
    # Two rounds per round trip, not one per spacing.
    assert follower.requests <= 2 * (loop.time() - started) / 0.1 + 2


async def test_a_round_proves_its_send_time_once_its_end_offsets_are_read() -> None:
    follower = SlowFollower()
    follower.read_to(0)
    follower.end = 5
    before = time.monotonic()
    assert follower.proven < before - 1000  # nothing proven before a round
    follower.refresh(1.0)
    after = time.monotonic()
    await asyncio.sleep(0.15)  # answered (5), but offsets 0-4 are not read
    assert follower.proven < before
    follower.read_to(5)
    await asyncio.sleep(0.01)
    # Proven as of when the round was sent, not of when it was answered or read.
    assert follower.proven >= before
    assert follower.proven < after + 0.01


async def test_each_proven_round_reports_its_time_from_send_to_read() -> None:
    follower = SlowFollower()  # 100 ms round trips
    times: list[float] = []
    follower._on_round = times.append
    follower.read_to(0)
    follower.end = 5
    follower.refresh(0.0)
    await asyncio.sleep(0.15)
    assert times == []  # answered, not read
    follower.read_to(5)
    await asyncio.sleep(0.01)
    assert len(times) == 1
    assert 0.15 <= times[0] < 0.5
    await follower.stop()


async def test_refresh_starts_a_round_when_none_is_under_way_and_the_proof_is_old() -> None:
    follower = SlowFollower()  # 100 ms round trips
    follower.read_to(0)
    for _ in range(100):
        follower.refresh(0.2)
        await asyncio.sleep(0)
    assert follower.requests == 1  # one under way
    await asyncio.sleep(0.12)  # answered and read: proven as of 0
    follower.refresh(0.2)
    await asyncio.sleep(0)
    assert follower.requests == 1  # the proof is 0.12 s old
    await asyncio.sleep(0.1)
    follower.refresh(0.2)
    follower.refresh(0.2)
    await asyncio.sleep(0)
    assert follower.requests == 2  # 0.22 s old
    await follower.stop()


async def test_a_caller_after_a_refresh_waits_for_a_round_sent_after_it() -> None:
    follower = SlowFollower()
    follower.read_to(0)
    follower.refresh(0.0)
    waiter = follower.caught_up()  # came after the round was sent: needs a round of its own
    await asyncio.wait_for(waiter, 1)
    assert follower.requests == 2


async def test_refresh_after_failed_rounds_waits_for_the_spacing() -> None:
    follower = SlowFollower()  # rounds at most every 10 ms
    follower.read_to(0)

    async def broken() -> dict[TopicPartition, int]:
        follower.requests += 1
        raise ConnectionError("down")

    follower._fetch_end_offsets = broken  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < 0.05:
        follower.refresh(0.0)
        await asyncio.sleep(0.001)
    assert follower.requests <= (loop.time() - started) / 0.01 + 1
    assert follower.proven < started
