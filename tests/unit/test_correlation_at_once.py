"""``CallCorrelator.at_once``: which outbound callbacks are answered without waiting, as a table.

The ledger is applied from real ledger records; the follower is a fake that only says how
recent its read of the ledger is (``proven``).
"""

from __future__ import annotations

import math
import time

import pytest
from aiokafka.structs import ConsumerRecord

from bridge.contracts.base import utcnow
from bridge.contracts.commands import PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState
from bridge.ingest import correlation
from bridge.ingest.correlation import CallCorrelator, Correlation, refresh_after
from bridge.obs.metrics import Metrics
from bridge.settings import Settings

HOLD = 0.025
OURS, THEIRS, OTHER = "+13215551081", "+13215551801", "+14075550100"


class FakeFollower:
    """Read the ledger as of ``age`` seconds before now (None: never)."""

    started = True

    def __init__(self, age: float | None) -> None:
        self.age = age
        self.refreshed = 0

    @property
    def proven(self) -> float:
        return -math.inf if self.age is None else time.monotonic() - self.age

    def refresh(self, every: float) -> None:
        self.refreshed += 1


def _record(command_id: str, state: LedgerState, call_id: str | None = None) -> ConsumerRecord:  # type: ignore[type-arg]
    now = utcnow()
    result = None
    if call_id is not None:
        result = PlaceCallResult(
            command_id=command_id, status=ResultStatus.PLACED, call_id=call_id,
            correlation_id=f"corr-{command_id}", attempts=1, received_at=now, finished_at=now,
        )  # fmt: skip
    value = LedgerEntry(
        command_id=command_id, state=state, source="t/0/0", result=result, updated_at=now,
        fonenumber=OURS, to=THEIRS,
    ).model_dump_json().encode()  # fmt: skip
    return ConsumerRecord(
        topic="ledger", partition=0, offset=0, timestamp=int(time.time() * 1000),
        timestamp_type=0, key=command_id.encode(), value=value, checksum=None,
        serialized_key_size=0, serialized_value_size=len(value), headers=[],
    )  # fmt: skip


def _correlator(age: float | None, *, hold: float = HOLD, wait: float = 1.0) -> CallCorrelator:
    callbacks = {"allow_unauthenticated": True, "correlation_hold": hold, "correlation_wait": wait}
    settings = Settings(callbacks=callbacks)
    correlator = CallCorrelator(settings, Metrics())
    correlator._follower = FakeFollower(age)  # type: ignore[assignment]
    correlator._apply(_record("placed", LedgerState.PLACING))
    correlator._apply(_record("placed", LedgerState.DONE, call_id="call-placed"))
    return correlator


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
    correlator = _correlator(age, hold=hold)
    if pending:
        correlator._apply(_record("in-flight", LedgerState.PLACING))
    assert correlator.at_once(call_id, numbers) == expected


async def test_correlation_off_never_waits() -> None:
    correlator = _correlator(None, wait=0.0)
    assert correlator.at_once("call-x", (OURS, THEIRS)) == UNTAGGED


async def test_asking_keeps_the_read_recent() -> None:
    correlator = _correlator(HOLD / 2)
    follower = correlator._follower
    assert isinstance(follower, FakeFollower)
    correlator.at_once("call-x", (OURS, THEIRS))
    correlator.at_once("call-y", (OURS, THEIRS))
    assert follower.refreshed == 2  # the follower spaces the rounds itself
    correlator.at_once("call-placed", (OURS, THEIRS))
    assert follower.refreshed == 2  # known calls ask nothing of the ledger
    follower.age = 0.0
    assert correlator.at_once("call-z", (OURS, THEIRS)) == UNTAGGED
    assert follower.refreshed == 2  # a proof younger than a third of a hold needs no round


async def test_a_done_naming_a_call_produced_untagged_is_a_tag_missed() -> None:
    correlator = _correlator(HOLD / 2)
    metrics = correlator._metrics
    assert correlator.at_once("call-late", (OURS, THEIRS)) == UNTAGGED
    correlator._apply(_record("late", LedgerState.DONE, call_id="call-late"))
    correlator._apply(_record("late", LedgerState.DONE, call_id="call-late"))  # counted once
    text = metrics.render().decode()
    assert "bridge_callback_tags_missed_total 1.0" in text
    assert 'bridge_callback_correlations_total{how="at_once"} 1.0' in text


async def test_untagged_calls_are_remembered_for_at_least_half_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(correlation, "UNTAGGED_REMEMBERED", 4)
    correlator = _correlator(HOLD / 2)
    for n in range(5):  # call-0 and call-1 filled a generation; call-4 started the third
        assert correlator.at_once(f"call-{n}", (OURS, THEIRS)) == UNTAGGED
    correlator._apply(_record("late-3", LedgerState.DONE, call_id="call-3"))
    correlator._apply(_record("late-0", LedgerState.DONE, call_id="call-0"))  # forgotten
    assert "bridge_callback_tags_missed_total 1.0" in correlator._metrics.render().decode()


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
    correlator = _correlator(HOLD / 2)
    assert correlator._refresh_after == pytest.approx(HOLD / 3)  # untimed: a third of a hold
    for _ in range(100):
        correlator._round_proven(0.001)
    assert correlator._refresh_after == pytest.approx(HOLD / 2)
    correlator._round_proven(0.010)  # one slow round: the next rounds start sooner at once
    assert correlator._refresh_after == pytest.approx(HOLD / 4)
    for _ in range(40):
        correlator._round_proven(0.001)  # and forgotten over the rounds after it
    assert correlator._refresh_after == pytest.approx(HOLD / 2)
    text = correlator._metrics.render().decode()
    assert "bridge_ledger_round_seconds_count 141.0" in text
