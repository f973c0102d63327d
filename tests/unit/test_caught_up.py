"""``TopicFollower.caught_up``: many waiters, one round trip, each released once caught up."""

from __future__ import annotations

import asyncio

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

    follower._ends._fetch = broken
    try:
        await asyncio.wait_for(follower.caught_up(), 1)
    except ConnectionError:
        pass
    else:
        raise AssertionError("expected the request's error")
    follower._ends._fetch = follower._fetch_end_offsets
    await asyncio.wait_for(follower.caught_up(), 1)
