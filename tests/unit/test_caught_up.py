"""``CatchUp``: rounds of end offsets shared by many waiters, each released once the read has
reached them, and the proof they leave. On virtual time: every time below is exact."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest
from aiokafka import TopicPartition

from bridge.kafka.catch_up import CatchUp
from tests.support.virtual_time import run

TP = TopicPartition("t", 0)


class Topic:
    """A topic whose ``end`` is written; ``end_offsets`` answers after ``round_trip`` seconds."""

    def __init__(self, round_trip: float = 0.01) -> None:
        self.round_trip = round_trip
        self.end = 0
        self.sent: list[float] = []
        self.failing: Exception | None = None

    async def end_offsets(self) -> dict[TopicPartition, int]:
        self.sent.append(asyncio.get_running_loop().time())
        end = self.end  # as of when the request was sent
        await asyncio.sleep(self.round_trip)
        if self.failing is not None:
            raise self.failing
        return {TP: end}


def catch_up(
    topic: Topic, *, spacing: float = 0.0, on_round: Callable[[float], None] | None = None
) -> CatchUp:
    """A ``CatchUp`` of ``topic`` on the loop's (virtual) clock, having read up to offset 0."""
    clock = asyncio.get_running_loop().time
    read = CatchUp(topic.end_offsets, spacing=spacing, on_round=on_round, clock=clock)
    read.advance({TP: 0})
    return read


def test_waiters_share_a_round_and_wait_until_read() -> None:
    topic = Topic()
    topic.end = 5

    async def main() -> None:
        read = catch_up(topic)
        waiters = [read.caught_up() for _ in range(100)]
        await asyncio.sleep(1)
        assert not any(w.done() for w in waiters)  # offsets 0-4 are not read yet
        read.advance({TP: 5})
        assert await asyncio.gather(*waiters) == [{TP: 5}] * 100

    run(main)
    assert len(topic.sent) == 1


def test_end_offsets_answers_once_read_up_to_them() -> None:
    topic = Topic()
    topic.end = 3

    async def main() -> None:
        read = catch_up(topic)
        ends = asyncio.ensure_future(read.end_offsets())
        await asyncio.sleep(1)
        assert not ends.done()
        read.advance({TP: 3})
        assert await ends == {TP: 3}
        assert read.reached({TP: 3})

    run(main)


def test_stop_cancels_the_waiters_of_rounds_under_way() -> None:
    async def main() -> None:
        read = catch_up(Topic(round_trip=0.1))
        waiter = read.caught_up()
        await asyncio.sleep(0.02)
        await read.stop()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    run(main)


def test_a_round_proves_its_send_time_once_its_end_offsets_are_read() -> None:
    topic = Topic(round_trip=0.1)
    topic.end = 5

    async def main() -> None:
        read = catch_up(topic)
        assert read.proven == -math.inf  # nothing proven before a round
        await asyncio.sleep(1)
        read.refresh(1.0)  # sent at 1.0
        await asyncio.sleep(0.15)  # answered (5), but offsets 0-4 are not read
        assert read.proven == -math.inf
        read.advance({TP: 5})
        await asyncio.sleep(0.01)
        # Proven as of when the round was sent, not of when it was answered or read.
        assert read.proven == 1.0

    run(main)


def test_each_proven_round_reports_its_time_from_send_to_read() -> None:
    topic = Topic(round_trip=0.1)
    topic.end = 5
    times: list[float] = []

    async def main() -> None:
        read = catch_up(topic, on_round=times.append)
        read.refresh(0.0)
        await asyncio.sleep(0.15)
        assert times == []  # answered, not read
        read.advance({TP: 5})
        await asyncio.sleep(0.01)

    run(main)
    assert times == [pytest.approx(0.15)]


def test_refresh_starts_a_round_when_none_is_under_way_and_the_proof_is_old() -> None:
    topic = Topic(round_trip=0.1)

    async def main() -> None:
        read = catch_up(topic)
        for _ in range(100):
            read.refresh(0.2)
            await asyncio.sleep(0)
        assert len(topic.sent) == 1  # one under way
        await asyncio.sleep(0.12)  # answered and read: proven as of 0
        read.refresh(0.2)
        await asyncio.sleep(0)
        assert len(topic.sent) == 1  # the proof is 0.12 s old
        await asyncio.sleep(0.1)
        read.refresh(0.2)
        read.refresh(0.2)
        await asyncio.sleep(0)
        assert len(topic.sent) == 2  # 0.22 s old
        await read.stop()

    run(main)


def test_a_caller_after_a_refresh_waits_for_a_round_sent_after_it() -> None:
    topic = Topic(round_trip=0.1)

    async def main() -> None:
        read = catch_up(topic)
        read.refresh(0.0)
        await asyncio.sleep(0)
        topic.end = 1  # written after the refresh's round was sent
        waiter = read.caught_up()
        await asyncio.sleep(1)
        assert not waiter.done()
        read.advance({TP: 1})
        await waiter

    run(main)
    assert len(topic.sent) == 2


def test_refresh_after_failed_rounds_waits_for_the_spacing() -> None:
    topic = Topic(round_trip=0.0)
    topic.failing = ConnectionError("down")

    async def main() -> None:
        read = catch_up(topic, spacing=0.01)
        while asyncio.get_running_loop().time() < 0.05:
            read.refresh(0.0)
            await asyncio.sleep(0.001)
        assert read.proven == -math.inf

    run(main)
    assert len(topic.sent) == 5  # at 0, 0.01, ..., 0.04


def test_a_round_starts_while_another_is_under_way_but_two_at_most() -> None:
    topic = Topic(round_trip=0.1)

    async def main() -> None:
        read = catch_up(topic, spacing=0.01)
        waiters = []
        for _ in range(30):  # a caller every 10 ms, each round trip 100 ms
            waiters.append(read.caught_up())
            await asyncio.sleep(0.01)
        await asyncio.gather(*waiters)

    run(main)
    # The second round did not wait for the first's answer; the third waited for a slot.
    assert topic.sent[:3] == [0.0, pytest.approx(0.01), pytest.approx(0.1)]
