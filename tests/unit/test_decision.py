"""decide(): the action for a command from its ledger entry, as a table."""

from datetime import UTC, datetime, timedelta

import pytest

from bridge.commands.decision import CLOCK_MARGIN_SHARE, Finish, Place, Republish, decide
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SOURCE = "commands/0/41"
WEEK = 7 * 86400.0


def command(**fields: object) -> PlaceCallCommand:
    return PlaceCallCommand.model_validate(
        {"command_id": "c1", "fonenumber": "3215551081", "to": "3215550100", **fields}
    )


def entry(
    state: LedgerState, source: str = SOURCE, status: ResultStatus | None = None
) -> LedgerEntry:
    result = None
    if status is not None:
        result = PlaceCallResult(
            command_id="c1",
            status=status,
            call_id="call-9" if status is ResultStatus.PLACED else None,
            received_at=NOW,
            finished_at=NOW,
        )
    return LedgerEntry(command_id="c1", state=state, source=source, result=result, updated_at=NOW)


REFUSED = ("destination_not_allowed", "to '9005550100' (+19005550100) is a premium-rate number")
REJECTED = Finish(ResultStatus.REJECTED, *REFUSED, dead_letter=True)


#: (ledger, command, written at, delivery, expected action): the decision of each case.
DECISIONS = [
    pytest.param(None, command(), NOW, "at-most-once", Place(), id="new command"),
    pytest.param(
        entry(LedgerState.PENDING),
        command(),
        NOW,
        "at-most-once",
        Place(),
        id="pending: no call was made",
    ),
    pytest.param(
        entry(LedgerState.PLACING),
        command(),
        NOW,
        "at-most-once",
        ResultStatus.IN_DOUBT,
        id="placing, at-most-once: in doubt",
    ),
    pytest.param(
        entry(LedgerState.PLACING),
        command(),
        NOW,
        "at-least-once",
        Place(again=True),
        id="placing, at-least-once: again",
    ),
    pytest.param(
        entry(LedgerState.PLACING),
        command(not_after=NOW - timedelta(seconds=1)),
        NOW,
        "at-least-once",
        ResultStatus.EXPIRED,
        id="placing, at-least-once, expired",
    ),
    pytest.param(
        entry(LedgerState.DONE, status=ResultStatus.PLACED),
        command(),
        NOW,
        "at-most-once",
        "republish",
        id="done by this record: republish",
    ),
    pytest.param(
        entry(LedgerState.DONE, source="commands/0/7", status=ResultStatus.PLACED),
        command(),
        NOW,
        "at-most-once",
        ResultStatus.DUPLICATE,
        id="done by a copy",
    ),
    pytest.param(
        None,
        command(not_after=NOW),
        NOW,
        "at-most-once",
        ResultStatus.EXPIRED,
        id="not_after now",
    ),
    pytest.param(
        None,
        command(not_after=NOW + timedelta(seconds=1)),
        NOW,
        "at-most-once",
        Place(),
        id="not_after later",
    ),
    pytest.param(
        None,
        command(),
        NOW - timedelta(seconds=WEEK + 1),
        "at-most-once",
        ResultStatus.EXPIRED,
        id="older than the ledger remembers",
    ),
    pytest.param(
        entry(LedgerState.PENDING),
        command(),
        NOW - timedelta(seconds=WEEK + 1),
        "at-most-once",
        Place(),
        id="old but known pending",
    ),
    pytest.param(None, command(), None, "at-most-once", Place(), id="no timestamp"),
]


@pytest.mark.parametrize("refused", [False, True], ids=["", "refused"])
@pytest.mark.parametrize(("ledger", "cmd", "written_at", "delivery", "expected"), DECISIONS)
def test_decision_table(ledger, cmd, written_at, delivery, expected, refused) -> None:
    if refused and isinstance(expected, Place):
        expected = REJECTED  # a refusal only replaces placing
    action = decide(
        cmd,
        ledger,
        source=SOURCE,
        now=NOW,
        written_at=written_at,
        retention=WEEK,
        delivery=delivery,
        refusal=REFUSED if refused else None,
    )
    if expected == "republish":
        assert isinstance(action, Republish)
        assert action.result == ledger.result
    elif isinstance(expected, ResultStatus):
        assert isinstance(action, Finish)
        assert action.status is expected
        assert not action.dead_letter
    else:
        assert action == expected


def test_duplicate_names_the_first_call_and_too_old_says_why() -> None:
    dup = decide(
        command(),
        entry(LedgerState.DONE, source="x/0/1", status=ResultStatus.PLACED),
        source=SOURCE,
        now=NOW,
        written_at=NOW,
        retention=WEEK,
        delivery="at-most-once",
        refusal=None,
    )
    assert isinstance(dup, Finish)
    assert dup.call_id == "call-9"
    assert "already finished as placed" in dup.message
    old = decide(
        command(),
        None,
        source=SOURCE,
        now=NOW,
        written_at=NOW - timedelta(days=8),
        retention=WEEK,
        delivery="at-most-once",
        refusal=None,
    )
    assert isinstance(old, Finish)
    assert old.error_code == "too_old"
    assert "BRIDGE_WORKER__LEDGER_RETENTION" in old.message


HOUR = 3600.0
#: Where decide() starts refusing commands it has no entry for.
REFUSED_AFTER = WEEK * (1 - CLOCK_MARGIN_SHARE)


@pytest.mark.parametrize(
    ("ledger", "age", "expected"),
    [
        pytest.param(None, REFUSED_AFTER - 1, Place(), id="inside the margin: placed"),
        pytest.param(None, REFUSED_AFTER + 1, "too_old", id="in the margin: refused"),
        pytest.param(
            None,
            WEEK - HOUR,
            "too_old",
            # The original's entries, stamped an hour earlier by a worker's clock (or deleted
            # by a broker's clock an hour ahead), are forgotten already at this age.
            id="a copy stamped an hour after its forgotten original: refused",
        ),
        pytest.param(
            None,
            WEEK - 12 * HOUR,
            "too_old",
            id="a producer clock half a day ahead: still refused",
        ),
        pytest.param(None, WEEK + 1, "too_old", id="past the retention: refused"),
        pytest.param(
            entry(LedgerState.PENDING), WEEK - HOUR, Place(), id="in the margin, known: placed"
        ),
        pytest.param(
            entry(LedgerState.DONE, source="commands/0/7", status=ResultStatus.PLACED),
            WEEK - HOUR,
            ResultStatus.DUPLICATE,
            id="in the margin, done: duplicate",
        ),
    ],
)
def test_commands_are_refused_a_margin_before_the_ledger_forgets(ledger, age, expected) -> None:
    action = decide(
        command(),
        ledger,
        source=SOURCE,
        now=NOW,
        written_at=NOW - timedelta(seconds=age),
        retention=WEEK,
        delivery="at-most-once",
        refusal=None,
    )
    if expected == "too_old":
        assert isinstance(action, Finish)
        assert (action.status, action.error_code) == (ResultStatus.EXPIRED, "too_old")
    elif isinstance(expected, ResultStatus):
        assert isinstance(action, Finish)
        assert action.status is expected
    else:
        assert action == expected
