"""``CallCorrelator`` and ``in_doubt`` commands: which callbacks it tags from the evidence.

Real ledger records are applied; the follower is a fake that says how recent its read of the
ledger is, and lets a test decide when a waiting callback sees the next batch
(:mod:`tests.support.correlation`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord

from bridge.contracts.calls import WORKER_SOURCE, CallPlaced, placed_event_id
from bridge.contracts.commands import ResultStatus
from bridge.contracts.ledger import LedgerState
from bridge.ingest.correlation import Correlation
from bridge.ingest.doubts import Doubt
from tests.support.correlation import (
    OTHER,
    OURS,
    PAIR,
    THEIRS,
    Correlating,
    correlating,
    ledger_record,
)

HOLD = 0.025
REPORTED = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def record(
    command_id: str, state: LedgerState | None, **options: Any
) -> ConsumerRecord[bytes, bytes]:
    """A ledger record (:func:`~tests.support.correlation.ledger_record`) reported then."""
    return ledger_record(command_id, state, reported=REPORTED, **options)


def in_doubt(command_id: str, pair: tuple[str, str] = PAIR, age: float = 0.0) -> list[Any]:
    """A command's placing and its in_doubt done."""
    return [
        record(command_id, LedgerState.PLACING, pair=pair, age=age),
        record(command_id, LedgerState.DONE, status=ResultStatus.IN_DOUBT, pair=pair),
    ]


def correlator(
    *records: Any, age: float | None = HOLD / 2, window: float = 3600.0, wait: float = 1.0,
    failure: Exception | None = None,
) -> Correlating:  # fmt: skip
    callbacks = {
        "correlation_hold": HOLD, "correlation_wait": wait, "correlation_doubt_window": window,
    }  # fmt: skip
    return correlating(callbacks, *records, age=age, failure=failure)


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
    got = c.correlator.at_once("call-x", numbers)
    assert _same(got, expected), got
    text = c.metrics_text()
    for label in ("reconciled", "ambiguous", "unproven"):
        count = 1.0 if label == verdict else 0.0
        line = f'bridge_callback_doubts_total{{verdict="{label}"}} {count}'
        assert line in text or (count == 0 and f'verdict="{label}"' not in text)


async def test_a_placement_older_than_the_window_counts_from_when_it_began() -> None:
    # The done came now, but the placement began longer than the window ago.
    c = correlator(*in_doubt("a", age=120), window=60)
    assert c.correlator.at_once("call-x", PAIR) == UNTAGGED


async def test_a_callback_waiting_for_a_placement_that_ends_in_doubt_is_its_call() -> None:
    c = correlator(record("a", LedgerState.PLACING))
    assert c.correlator.at_once("call-x", PAIR) is WAIT
    waiting = asyncio.create_task(c.correlator.lookup("call-x", PAIR))
    await asyncio.sleep(0)
    c.follower.batch()  # a batch without the done: still waiting
    await asyncio.sleep(0)
    assert not waiting.done()
    c.apply(record("a", LedgerState.DONE, status=ResultStatus.IN_DOUBT))
    c.follower.batch()
    assert _same(await waiting, reconciled("a"))


async def test_a_callback_waiting_for_a_placement_that_ends_in_doubt_too_is_nobodys() -> None:
    c = correlator(*in_doubt("a"), record("b", LedgerState.PLACING))
    waiting = asyncio.create_task(c.correlator.lookup("call-x", PAIR))
    await asyncio.sleep(0)
    c.apply(record("b", LedgerState.DONE, status=ResultStatus.IN_DOUBT))
    c.follower.batch()
    assert await waiting == UNTAGGED
    assert 'bridge_callback_doubts_total{verdict="ambiguous"} 1.0' in c.metrics_text()


async def test_a_wait_that_runs_out_with_a_placement_in_flight_is_no_evidence() -> None:
    c = correlator(*in_doubt("a"), record("b", LedgerState.PLACING), wait=0.05)
    assert await c.correlator.lookup("call-x", PAIR) == UNTAGGED
    assert 'bridge_callback_doubts_total{verdict="ambiguous"} 1.0' in c.metrics_text()


async def test_a_ledger_not_read_as_of_the_callback_is_no_evidence() -> None:
    c = correlator(*in_doubt("a"), age=None, failure=KafkaConnectionError())
    assert c.correlator.at_once("call-x", PAIR) is WAIT  # the read is too old to answer at once
    assert await c.correlator.lookup("call-x", PAIR) == UNTAGGED
    assert 'bridge_callback_doubts_total{verdict="unproven"} 1.0' in c.metrics_text()


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any, str]] = []

    async def publish_event(self, topic: str, event: Any, *, source: str) -> None:
        self.events.append((topic, event, source))


async def test_the_call_is_announced_once_and_its_later_callbacks_stay_tagged() -> None:
    made = correlator(*in_doubt("a"))
    c = made.correlator
    found = c.at_once("call-x", PAIR)
    assert found is not None
    assert found.reconciled is not None
    publisher = FakePublisher()
    await c.announce(publisher, "call-x", found.reconciled)  # type: ignore[arg-type]
    [(topic, placed, source)] = publisher.events
    assert (topic, source) == (made.settings.topics.call_events, WORKER_SOURCE)
    assert placed == CallPlaced(
        event_id=placed_event_id("call-x"), call_id="call-x", command_id="a",
        correlation_id="corr-a", fonenumber=OURS, to=THEIRS, placed_at=REPORTED,
        reconciled=True,
    )  # fmt: skip
    # The END: tagged by its call id, nothing more to announce, even once the numbers are
    # ambiguous (another command to them ended in doubt since).
    made.apply(*in_doubt("b"))
    assert c.known("call-x") == Correlation("a", "corr-a")
