"""``CallCorrelator`` and ``in_doubt`` commands: which callbacks it tags from the evidence.

Real ledger records are applied; the follower is a fake that says how recent its read of the
ledger is, and lets a test decide when a waiting callback sees the next batch.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord

from bridge.contracts.base import utcnow
from bridge.contracts.calls import WORKER_SOURCE, CallPlaced, placed_event_id
from bridge.contracts.commands import PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState
from bridge.ingest.correlation import CallCorrelator, Correlation
from bridge.ingest.doubts import Doubt
from bridge.obs.metrics import Metrics
from bridge.settings import Settings

HOLD = 0.025
OURS, THEIRS, OTHER = "+13215551081", "+13215551801", "+14075550100"
PAIR = (OURS, THEIRS)
REPORTED = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


class FakeFollower:
    """Read the ledger as of ``age`` seconds before now; batches come when the test says."""

    started = True

    def __init__(self, age: float | None, failure: Exception | None = None) -> None:
        self.age = age
        self.failure = failure
        self._batch = asyncio.Event()

    @property
    def proven(self) -> float:
        return -math.inf if self.age is None else time.monotonic() - self.age

    def refresh(self, every: float) -> None:
        pass

    def caught_up(self) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failure is None:
            done.set_result(None)
        else:
            done.set_exception(self.failure)
        return done

    async def progress(self) -> None:
        await self._batch.wait()

    def batch(self) -> None:
        self._batch.set()
        self._batch = asyncio.Event()


def record(
    command_id: str,
    state: LedgerState | None,
    *,
    status: ResultStatus | None = None,
    call_id: str | None = None,
    pair: tuple[str, str] = PAIR,
    age: float = 0.0,
) -> ConsumerRecord:  # type: ignore[type-arg]
    """A ledger record written ``age`` seconds ago (``state`` None: a tombstone)."""
    result = None
    if status is not None:
        result = PlaceCallResult(
            command_id=command_id, status=status, call_id=call_id,
            correlation_id=f"corr-{command_id}", attempts=1, received_at=REPORTED,
            finished_at=REPORTED,
        )  # fmt: skip
    value = None
    if state is not None:
        value = LedgerEntry(
            command_id=command_id, state=state, source="t/0/0", result=result,
            updated_at=utcnow(), fonenumber=pair[0], to=pair[1],
        ).model_dump_json().encode()  # fmt: skip
    return ConsumerRecord(
        topic="ledger", partition=0, offset=0, timestamp=int((time.time() - age) * 1000),
        timestamp_type=0, key=command_id.encode(), value=value, checksum=None,
        serialized_key_size=0, serialized_value_size=len(value or b""), headers=[],
    )  # fmt: skip


def in_doubt(command_id: str, pair: tuple[str, str] = PAIR, age: float = 0.0) -> list[Any]:
    """A command's placing and its in_doubt done."""
    return [
        record(command_id, LedgerState.PLACING, pair=pair, age=age),
        record(command_id, LedgerState.DONE, status=ResultStatus.IN_DOUBT, pair=pair),
    ]


def correlator(
    *records: Any, age: float | None = HOLD / 2, window: float = 3600.0, **follower: Any
) -> CallCorrelator:
    callbacks = {
        "allow_unauthenticated": True, "correlation_hold": HOLD, "correlation_wait": 1.0,
        "correlation_doubt_window": window,
    }  # fmt: skip
    c = CallCorrelator(Settings(callbacks=callbacks), Metrics())
    c._follower = FakeFollower(age, **follower)  # type: ignore[assignment]
    for r in records:
        c._apply(r)
    return c


def reconciled(command_id: str) -> Correlation:
    return Correlation(command_id, f"corr-{command_id}", None, Doubt(
        command_id, f"corr-{command_id}", PAIR, 0.0, REPORTED
    ))  # fmt: skip


UNTAGGED = Correlation()
WAIT = None


def _same(got: Correlation | None, expected: Correlation | None) -> bool:
    """Equal but for when the placement began (the record's timestamp)."""
    if got is None or expected is None or got.reconciled is None or expected.reconciled is None:
        return got == expected
    return got == expected._replace(
        reconciled=replace(expected.reconciled, since=got.reconciled.since)
    )


IN_FLIGHT = record("c", LedgerState.PLACING)
PLACED = record("c", LedgerState.DONE, status=ResultStatus.PLACED, call_id="call-c")
FAILED = record("f", LedgerState.DONE, status=ResultStatus.FAILED)


@pytest.mark.parametrize(
    ("records", "numbers", "window", "expected", "verdict"),
    [
        # One command in doubt to these numbers: the callback is its call.
        (in_doubt("a"), PAIR, 3600.0, reconciled("a"), "reconciled"),
        # ... whose placement was read, however long ago its done came. (Records are made when
        # the tests are collected: an age near the window would run out in a long session.)
        (in_doubt("a", age=600), PAIR, 3600.0, reconciled("a"), "reconciled"),
        # Other numbers, or a number that is none: not evidence.
        (in_doubt("a", (OURS, OTHER)), PAIR, 3600.0, UNTAGGED, None),
        (in_doubt("a"), (None, THEIRS), 3600.0, UNTAGGED, None),
        # Placed longer than the window ago, or the window off.
        (in_doubt("a", age=3700), PAIR, 3600.0, UNTAGGED, None),
        (in_doubt("a"), PAIR, 0.0, UNTAGGED, None),
        # Two in doubt to the same numbers: no guess.
        ([*in_doubt("a"), *in_doubt("b")], PAIR, 3600.0, UNTAGGED, "ambiguous"),
        # ... unless one of them is outside the window.
        ([*in_doubt("a"), *in_doubt("b", age=3700)], PAIR, 3600.0, reconciled("a"), "reconciled"),
        # A placement in flight to the same numbers: wait for its done first.
        ([*in_doubt("a"), IN_FLIGHT], PAIR, 3600.0, WAIT, None),
        # A placement that named its own call is no rival.
        ([*in_doubt("a"), IN_FLIGHT, PLACED], PAIR, 3600.0, reconciled("a"), "reconciled"),
        # A command placed again, or removed from the ledger, is no longer in doubt.
        ([*in_doubt("a"), record("a", LedgerState.PLACING)], PAIR, 3600.0, WAIT, None),
        ([*in_doubt("a"), record("a", None)], PAIR, 3600.0, UNTAGGED, None),
        # Not in doubt.
        ([FAILED], PAIR, 3600.0, UNTAGGED, None),
    ],
)
async def test_at_once(
    records: list[Any],
    numbers: tuple[str | None, str | None],
    window: float,
    expected: Correlation | None,
    verdict: str | None,
) -> None:
    c = correlator(*records, window=window)
    got = c.at_once("call-x", numbers)
    assert _same(got, expected), got
    text = c._metrics.render().decode()
    for label in ("reconciled", "ambiguous", "unproven"):
        count = 1.0 if label == verdict else 0.0
        line = f'bridge_callback_doubts_total{{verdict="{label}"}} {count}'
        assert line in text or (count == 0 and f'verdict="{label}"' not in text)


async def test_a_placement_older_than_the_window_counts_from_when_it_began() -> None:
    # The done came now, but the placement began longer than the window ago.
    c = correlator(*in_doubt("a", age=120), window=60)
    assert c.at_once("call-x", PAIR) == UNTAGGED


async def test_a_callback_waiting_for_a_placement_that_ends_in_doubt_is_its_call() -> None:
    c = correlator(record("a", LedgerState.PLACING))
    assert c.at_once("call-x", PAIR) is WAIT
    follower = c._follower
    assert isinstance(follower, FakeFollower)
    waiting = asyncio.create_task(c.lookup("call-x", PAIR))
    await asyncio.sleep(0)
    follower.batch()  # a batch without the done: still waiting
    await asyncio.sleep(0)
    assert not waiting.done()
    c._apply(record("a", LedgerState.DONE, status=ResultStatus.IN_DOUBT))
    follower.batch()
    assert _same(await waiting, reconciled("a"))


async def test_a_callback_waiting_for_a_placement_that_ends_in_doubt_too_is_nobodys() -> None:
    c = correlator(*in_doubt("a"), record("b", LedgerState.PLACING))
    follower = c._follower
    assert isinstance(follower, FakeFollower)
    waiting = asyncio.create_task(c.lookup("call-x", PAIR))
    await asyncio.sleep(0)
    c._apply(record("b", LedgerState.DONE, status=ResultStatus.IN_DOUBT))
    follower.batch()
    assert await waiting == UNTAGGED
    assert 'bridge_callback_doubts_total{verdict="ambiguous"} 1.0' in c._metrics.render().decode()


async def test_a_wait_that_runs_out_with_a_placement_in_flight_is_no_evidence() -> None:
    c = correlator(*in_doubt("a"), record("b", LedgerState.PLACING))
    c._deadlines.seconds = 0.05
    assert await c.lookup("call-x", PAIR) == UNTAGGED
    assert 'bridge_callback_doubts_total{verdict="ambiguous"} 1.0' in c._metrics.render().decode()


async def test_a_ledger_not_read_as_of_the_callback_is_no_evidence() -> None:
    c = correlator(*in_doubt("a"), age=None, failure=KafkaConnectionError())
    assert c.at_once("call-x", PAIR) is WAIT  # the read is too old to answer at once
    assert await c.lookup("call-x", PAIR) == UNTAGGED
    assert 'bridge_callback_doubts_total{verdict="unproven"} 1.0' in c._metrics.render().decode()


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any, str]] = []

    async def publish_event(self, topic: str, event: Any, *, source: str) -> None:
        self.events.append((topic, event, source))


async def test_the_call_is_announced_once_and_its_later_callbacks_stay_tagged() -> None:
    c = correlator(*in_doubt("a"))
    found = c.at_once("call-x", PAIR)
    assert found is not None
    assert found.reconciled is not None
    publisher = FakePublisher()
    await c.announce(publisher, "call-x", found.reconciled)  # type: ignore[arg-type]
    [(topic, placed, source)] = publisher.events
    assert (topic, source) == (c._settings.topics.call_events, WORKER_SOURCE)
    assert placed == CallPlaced(
        event_id=placed_event_id("call-x"), call_id="call-x", command_id="a",
        correlation_id="corr-a", fonenumber=OURS, to=THEIRS, placed_at=REPORTED,
        reconciled=True,
    )  # fmt: skip
    # The END: tagged by its call id, nothing more to announce, even once the numbers are
    # ambiguous (another command to them ended in doubt since).
    for r in in_doubt("b"):
        c._apply(r)
    assert c.known("call-x") == Correlation("a", "corr-a")
