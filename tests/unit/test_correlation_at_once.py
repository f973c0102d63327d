"""``CallCorrelator.at_once``: which outbound callbacks are answered without waiting, as a table.

The ledger is applied from real ledger records; the follower is a fake that only says how
recent its read of the ledger is (:mod:`tests.support.correlation`).
"""

from __future__ import annotations

import pytest
from aiokafka.structs import ConsumerRecord

from bridge.contracts.commands import ResultStatus
from bridge.contracts.ledger import LedgerState
from bridge.ingest import correlation
from bridge.ingest.correlation import Correlation
from bridge.ingest.ledger_rounds import refresh_after
from tests.support.correlation import OTHER, OURS, THEIRS, Correlating, correlating, ledger_record

HOLD = 0.025


def _correlating(age: float | None, *, hold: float = HOLD, wait: float = 1.0) -> Correlating:
    return correlating(
        {"correlation_hold": hold, "correlation_wait": wait},
        ledger_record("placed", LedgerState.PLACING),
        _done("placed", "call-placed"),
        age=age,
    )


def _done(command_id: str, call_id: str) -> ConsumerRecord[bytes, bytes]:
    return ledger_record(command_id, LedgerState.DONE, status=ResultStatus.PLACED, call_id=call_id)


TAGGED = Correlation("placed", "corr-placed")
UNTAGGED = Correlation()
WAIT = None


@pytest.mark.parametrize(
    ("call_id", "numbers", "age", "pending", "hold", "expected"),
    [
        # A call the ledger named: tagged, however old the read.
        ("call-placed", (OURS, THEIRS), None, False, HOLD, TAGGED),
        # Read less than the hold before: every placement that could have made it is known.
        ("call-x", (OURS, THEIRS), HOLD / 2, False, HOLD, UNTAGGED),
        ("call-x", (OURS, OTHER), HOLD / 2, True, HOLD, UNTAGGED),  # in flight, other numbers
        ("call-x", (None, THEIRS), HOLD / 2, True, HOLD, UNTAGGED),  # unreadable number
        # A placement to the same numbers is in flight: wait for its done.
        ("call-x", (OURS, THEIRS), HOLD / 2, True, HOLD, WAIT),
        # Read longer than the hold before (or never): a placement may be unread.
        ("call-x", (OURS, THEIRS), 2 * HOLD, False, HOLD, WAIT),
        ("call-x", (OURS, THEIRS), None, False, HOLD, WAIT),
        # No hold: no read before the callback can prove anything.
        ("call-x", (OURS, THEIRS), 0.0, False, 0.0, WAIT),
    ],
)
async def test_at_once(
    call_id: str,
    numbers: tuple[str | None, str | None],
    age: float | None,
    pending: bool,
    hold: float,
    expected: Correlation | None,
) -> None:
    made = _correlating(age, hold=hold)
    if pending:
        made.apply(ledger_record("in-flight", LedgerState.PLACING))
    assert made.correlator.at_once(call_id, numbers) == expected


async def test_correlation_off_never_waits() -> None:
    correlator = _correlating(None, wait=0.0).correlator
    assert correlator.at_once("call-x", (OURS, THEIRS)) == UNTAGGED


async def test_asking_keeps_the_read_recent() -> None:
    made = _correlating(HOLD / 2)
    correlator, follower = made.correlator, made.follower
    correlator.at_once("call-x", (OURS, THEIRS))
    correlator.at_once("call-y", (OURS, THEIRS))
    assert len(follower.refreshed) == 2  # the follower spaces the rounds itself
    correlator.at_once("call-placed", (OURS, THEIRS))
    assert len(follower.refreshed) == 2  # known calls ask nothing of the ledger
    follower.age = 0.0
    assert correlator.at_once("call-z", (OURS, THEIRS)) == UNTAGGED
    assert len(follower.refreshed) == 2  # a proof younger than a third of a hold needs no round


async def test_a_done_naming_a_call_produced_untagged_is_a_tag_missed() -> None:
    made = _correlating(HOLD / 2)
    assert made.correlator.at_once("call-late", (OURS, THEIRS)) == UNTAGGED
    made.apply(_done("late", "call-late"))
    made.apply(_done("late", "call-late"))  # counted once
    text = made.metrics_text()
    assert "bridge_callback_tags_missed_total 1.0" in text
    assert 'bridge_callback_correlations_total{how="at_once"} 1.0' in text


async def test_untagged_calls_are_remembered_for_at_least_half_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(correlation, "UNTAGGED_REMEMBERED", 4)
    made = _correlating(HOLD / 2)
    for n in range(5):  # call-0 and call-1 filled a generation; call-4 started the third
        assert made.correlator.at_once(f"call-{n}", (OURS, THEIRS)) == UNTAGGED
    made.apply(_done("late-3", "call-3"))
    made.apply(_done("late-0", "call-0"))  # forgotten
    assert "bridge_callback_tags_missed_total 1.0" in made.metrics_text()


@pytest.mark.parametrize(
    ("slowest", "expected"),
    [
        (0.001, HOLD / 2),  # quick rounds: renewed at half a hold, not later
        (0.006, HOLD / 2),
        (0.008, HOLD - 0.016),  # room for a round twice as slow as the slowest lately
        (0.010, HOLD / 4),  # slow rounds: renewed from a quarter of a hold on
        (1.0, HOLD / 4),
    ],
)
def test_refresh_after(slowest: float, expected: float) -> None:
    assert refresh_after(HOLD, slowest) == pytest.approx(expected)


async def test_rounds_set_how_old_the_proof_grows_before_the_next() -> None:
    made = _correlating(HOLD)  # old enough for a round whatever the rounds took
    follower = made.follower

    def refreshed_after() -> float:
        """How old the proof may grow: what a callback asks the follower to refresh after."""
        made.correlator.at_once(f"call-{len(follower.refreshed)}", (OURS, THEIRS))
        return follower.refreshed[-1]

    assert refreshed_after() == pytest.approx(HOLD / 3)  # untimed: a third of a hold
    for _ in range(100):
        follower.round_proven(0.001)
    assert refreshed_after() == pytest.approx(HOLD / 2)
    follower.round_proven(0.010)  # one slow round: the next rounds start sooner at once
    assert refreshed_after() == pytest.approx(HOLD / 4)
    for _ in range(40):
        follower.round_proven(0.001)  # and forgotten over the rounds after it
    assert refreshed_after() == pytest.approx(HOLD / 2)
    text = made.metrics_text()
    assert "bridge_ledger_round_seconds_count 141.0" in text
