"""Callbacks as evidence of an ``in_doubt`` command's call: :func:`weigh` and its book."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.contracts.calls import CallPlaced, placed_event_id
from bridge.ingest.doubts import (
    NO_EVIDENCE,
    Doubt,
    Doubts,
    Evidence,
    Verdict,
    reconciled_call,
    weigh,
)

OURS, THEIRS, OTHER = "+13215551081", "+13215551801", "+14075550100"
NOW = 1_800_000_000.0
WINDOW = 3600.0
REPORTED = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def doubt(command_id: str, age: float, pair: tuple[str, str] = (OURS, THEIRS)) -> Doubt:
    """An ``in_doubt`` command placed ``age`` seconds before NOW."""
    return Doubt(command_id, f"corr-{command_id}", pair, NOW - age, REPORTED)


A, B = doubt("a", 10), doubt("b", 20)
OLD = doubt("old", WINDOW + 1)
EDGE = doubt("edge", WINDOW)
AHEAD = doubt("ahead", -2)  # the writer's clock a little ahead of this one


@pytest.mark.parametrize(
    ("doubts", "in_flight", "proven", "expected"),
    [
        # No command in doubt to these numbers: nothing to say.
        ([], False, True, NO_EVIDENCE),
        ([], True, True, NO_EVIDENCE),
        # One, and nothing else could have made the call: its call.
        ([A], False, True, Evidence(Verdict.RECONCILED, A, (A,))),
        ([EDGE], False, True, Evidence(Verdict.RECONCILED, EDGE, (EDGE,))),
        ([AHEAD], False, True, Evidence(Verdict.RECONCILED, AHEAD, (AHEAD,))),
        # Placed longer than the window ago: not evidence, and no rival either.
        ([OLD], False, True, NO_EVIDENCE),
        ([OLD], True, True, NO_EVIDENCE),
        ([A, OLD], False, True, Evidence(Verdict.RECONCILED, A, (A,))),
        # Two in doubt, or one and a placement in flight: no guess.
        ([A, B], False, True, Evidence(Verdict.AMBIGUOUS, None, (A, B))),
        ([A], True, True, Evidence(Verdict.AMBIGUOUS, None, (A,))),
        ([A, B], True, True, Evidence(Verdict.AMBIGUOUS, None, (A, B))),
        # The ledger not read as of the callback: a placement may be unread.
        ([A], False, False, Evidence(Verdict.UNPROVEN, None, (A,))),
        ([A, B], False, False, Evidence(Verdict.AMBIGUOUS, None, (A, B))),
        ([OLD], False, False, NO_EVIDENCE),
    ],
)
def test_weigh(doubts: list[Doubt], in_flight: bool, proven: bool, expected: Evidence) -> None:
    got = weigh(doubts, in_flight=in_flight, proven=proven, now=NOW, window=WINDOW)
    assert got == expected


def test_the_book_keeps_one_doubt_per_command_indexed_by_its_numbers() -> None:
    book = Doubts(WINDOW, 10)
    book.add(A)
    book.add(B)
    book.add(doubt("elsewhere", 5, (OURS, OTHER)))
    assert list(book.between((OURS, THEIRS))) == [A, B]
    assert list(book.between((OURS, OTHER))) == [doubt("elsewhere", 5, (OURS, OTHER))]
    assert list(book.between((None, THEIRS))) == []
    again = doubt("a", 1)
    book.add(again)  # the same command written again: its latest entry counts
    assert list(book.between((OURS, THEIRS))) == [B, again]
    book.forget("b")
    book.forget("b")
    book.forget("never")
    assert list(book.between((OURS, THEIRS))) == [again]
    book.forget("a")
    assert list(book.between((OURS, THEIRS))) == []
    assert len(book) == 1


def test_the_book_forgets_doubts_older_than_the_window_and_beyond_its_bound() -> None:
    book = Doubts(WINDOW, 2)
    for d in (OLD, A, B):
        book.add(d)
    book.expire(NOW)
    assert list(book.between((OURS, THEIRS))) == [A, B]
    book.add(doubt("c", 1))
    book.expire(NOW)  # three in a book of two: the oldest goes
    assert [d.command_id for d in book.between((OURS, THEIRS))] == ["b", "c"]


def test_a_reconciled_call_has_the_id_the_worker_gives_the_same_call() -> None:
    placed = reconciled_call("call-1", A)
    assert placed == CallPlaced(
        event_id=placed_event_id("call-1"),
        call_id="call-1",
        command_id="a",
        correlation_id="corr-a",
        fonenumber=OURS,
        to=THEIRS,
        placed_at=REPORTED,
        reconciled=True,
    )
    # The scheme of the ids the worker has always published: changing it would duplicate events.
    assert placed_event_id("call-1") == "8dd02f39-ca19-5701-98b2-270c0c332f69"
