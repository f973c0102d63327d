"""Two jobs of one command: the ledger compare-and-set and how the loser ends, as tables."""

from datetime import UTC, datetime

import pytest

from bridge.commands.claim import foreign, lost, to_put_back
from bridge.commands.decision import Finish, Place, Republish, after_conflict, decide
from bridge.commands.ledger import Seen
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
MINE, OTHER = "commands/0/41", "commands/2/9"
ME, THEM = "job-me", "job-them"


def entry(
    state: LedgerState, *, source: str = OTHER, writer: str | None = THEM, call: bool = False
) -> LedgerEntry:
    result = None
    if state is LedgerState.DONE:
        result = PlaceCallResult(
            command_id="c1",
            status=ResultStatus.PLACED if call else ResultStatus.FAILED,
            call_id="call-9" if call else None,
            received_at=NOW,
            finished_at=NOW,
        )
    return LedgerEntry(
        command_id="c1", state=state, source=source, result=result, updated_at=NOW, writer=writer
    )


def at(offset: int, e: LedgerEntry | None) -> Seen:
    return Seen(partition=0, offset=offset, entry=e)


PLACING_ME = entry(LedgerState.PLACING, source=MINE, writer=ME)
PLACING_THEM = entry(LedgerState.PLACING)
DONE_THEM = entry(LedgerState.DONE, call=True)


@pytest.mark.parametrize(
    ("seen", "after", "expected"),
    [
        pytest.param([], 4, [], id="nothing read"),
        pytest.param([at(5, PLACING_ME)], 4, [], id="only our write"),
        pytest.param([at(5, PLACING_THEM), at(6, PLACING_ME)], 4, [5], id="theirs came first"),
        pytest.param([at(5, PLACING_ME), at(6, PLACING_THEM)], 4, [], id="ours came first"),
        pytest.param(
            [at(5, PLACING_ME), at(6, PLACING_THEM), at(7, PLACING_ME)],
            4,
            [],
            id="a retried write: the first copy counts",
        ),
        pytest.param([at(3, PLACING_THEM), at(5, PLACING_ME)], 4, [], id="before our read"),
        pytest.param([at(5, None), at(6, PLACING_ME)], 4, [5], id="a tombstone counts"),
    ],
)
def test_a_write_is_lost_to_records_of_others_between_the_read_and_it(
    seen: list[Seen], after: int, expected: list[int]
) -> None:
    assert [s.offset for s in lost(seen, writer=ME, after=after)] == expected


def test_foreign_records_are_other_writers_after_the_offset() -> None:
    copy_of_mine = entry(LedgerState.PLACING, source=MINE, writer=ME)  # put back by a loser
    seen = [at(3, PLACING_THEM), at(5, PLACING_ME), at(6, copy_of_mine), at(7, DONE_THEM)]
    assert [s.offset for s in foreign(seen, writer=ME, after=4)] == [7]
    assert [s.offset for s in foreign(seen, writer=ME, after=7)] == []


@pytest.mark.parametrize(
    ("seen", "copied", "expected"),
    [
        pytest.param(
            [at(5, DONE_THEM), at(6, PLACING_ME)], set(), DONE_THEM, id="our placing on top"
        ),
        pytest.param([at(5, PLACING_ME), at(6, DONE_THEM)], set(), None, id="theirs on top"),
        pytest.param(
            [at(5, PLACING_THEM), at(6, PLACING_ME), at(7, PLACING_THEM)],
            {PLACING_THEM.model_dump_json().encode()},
            None,
            id="our copy of theirs on top",
        ),
        pytest.param(
            [at(5, PLACING_THEM), at(6, PLACING_ME), at(7, PLACING_THEM), at(8, DONE_THEM)],
            {PLACING_THEM.model_dump_json().encode()},
            None,
            id="they wrote on after our copy",
        ),
        pytest.param(
            [at(5, PLACING_THEM), at(6, PLACING_ME), at(7, DONE_THEM), at(8, PLACING_THEM)],
            {PLACING_THEM.model_dump_json().encode()},
            DONE_THEM,
            id="our copy landed after their done: put the done back",
        ),
        pytest.param([at(5, None), at(6, PLACING_ME)], set(), None, id="never a tombstone"),
    ],
)
def test_what_a_loser_puts_back(
    seen: list[Seen], copied: set[bytes], expected: LedgerEntry | None
) -> None:
    assert to_put_back(seen, writer=ME, copied=copied) == expected


@pytest.mark.parametrize(
    ("latest", "call_possible", "expected"),
    [
        pytest.param(
            entry(LedgerState.DONE, source=MINE, call=True),
            False,
            "republish",
            id="this record done by its other owner: its result again",
        ),
        pytest.param(
            entry(LedgerState.PLACING, source=MINE),
            True,
            None,
            id="this record placing elsewhere: theirs to report",
        ),
        pytest.param(DONE_THEM, False, ResultStatus.DUPLICATE, id="a copy finished it"),
        pytest.param(PLACING_THEM, False, ResultStatus.DUPLICATE, id="a copy is placing it"),
        pytest.param(None, False, ResultStatus.DUPLICATE, id="an entry we cannot read"),
        pytest.param(DONE_THEM, True, ResultStatus.IN_DOUBT, id="our earlier attempt may ring"),
    ],
)
def test_how_the_job_that_lost_ends(
    latest: LedgerEntry | None, call_possible: bool, expected: ResultStatus | str | None
) -> None:
    finish = after_conflict(latest, source=MINE, call_possible=call_possible)
    if expected == "republish":
        assert isinstance(finish, Republish)
        assert latest is not None
        assert finish.result == latest.result
    elif expected is None:
        assert finish is None
    else:
        assert isinstance(finish, Finish)
        assert finish.status is expected
        assert not finish.dead_letter
    if expected is ResultStatus.DUPLICATE and latest is DONE_THEM:
        assert finish is not None
        assert finish.call_id == "call-9"


@pytest.mark.parametrize(
    ("ledger", "expected"),
    [
        pytest.param(entry(LedgerState.PENDING), ResultStatus.DUPLICATE, id="pending by a copy"),
        pytest.param(entry(LedgerState.PLACING), ResultStatus.DUPLICATE, id="placing by a copy"),
        pytest.param(entry(LedgerState.PENDING, source=MINE), Place(), id="pending by this one"),
    ],
)
def test_a_copy_of_a_command_in_progress_is_a_duplicate(
    ledger: LedgerEntry, expected: ResultStatus | Place
) -> None:
    cmd = PlaceCallCommand.model_validate(
        {"command_id": "c1", "fonenumber": "3215551081", "to": "3215550100"}
    )
    action = decide(
        cmd,
        ledger,
        source=MINE,
        now=NOW,
        written_at=NOW,
        retention=86400.0,
        delivery="at-most-once",
        refusal=None,
    )
    if isinstance(expected, Place):
        assert action == expected
    else:
        assert isinstance(action, Finish)
        assert action.status is expected
        assert "being placed from record commands/2/9" in action.message
