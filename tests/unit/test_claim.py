"""Two jobs of one command: the ledger compare-and-set and how the loser ends, as tables."""

from datetime import UTC, datetime

import pytest

from bridge.commands.claim import foreign, lost, lost_to, to_put_back, withdrew
from bridge.commands.decision import Finish, Place, Republish, after_conflict, decide
from bridge.commands.ledger import NOWHERE, Position, Seen
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


def at(offset: int, e: LedgerEntry | None, partition: int = 0) -> Seen:
    return Seen(partition=partition, offset=offset, entry=e)


def on(partition: int, offset: int, e: LedgerEntry | None) -> Seen:
    return at(offset, e, partition)


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
    assert [s.offset for s in lost(seen, writer=ME, after=Position(0, after))] == expected


def test_foreign_records_are_other_writers_after_the_offset() -> None:
    copy_of_mine = entry(LedgerState.PLACING, source=MINE, writer=ME)  # put back by a loser
    seen = [at(3, PLACING_THEM), at(5, PLACING_ME), at(6, copy_of_mine), at(7, DONE_THEM)]
    assert [s.offset for s in foreign(seen, writer=ME, after=Position(0, 4))] == [7]
    assert [s.offset for s in foreign(seen, writer=ME, after=Position(0, 7))] == []


# Partitions added to the ledger: the command's key now maps to partition 1, its older records
# are on partition 0, and a producer that has not seen the new partitions yet still writes there.
@pytest.mark.parametrize(
    ("seen", "after", "expected"),
    [
        pytest.param(
            [on(1, 5, PLACING_ME)], Position(0, 9), [], id="our write on the new partition"
        ),
        pytest.param(
            [on(0, 3, PLACING_THEM), on(1, 5, PLACING_ME)],
            Position(0, 9),
            [],
            id="theirs before our read on the old one",
        ),
        pytest.param(
            [on(1, 4, PLACING_THEM), on(1, 5, PLACING_ME)],
            Position(0, 9),
            [(1, 4)],
            id="theirs first on the new one, at an offset below our read's on the old one",
        ),
        pytest.param(
            [on(0, 12, PLACING_THEM), on(1, 5, PLACING_ME)],
            Position(0, 9),
            [(0, 12)],
            id="theirs after our read, on the old one: unordered against ours, counts",
        ),
        pytest.param(
            [on(1, 5, PLACING_ME), on(0, 12, PLACING_THEM)],
            Position(0, 9),
            [(0, 12)],
            id="read after ours: still unordered, counts",
        ),
        pytest.param(
            [on(0, 2, PLACING_THEM), on(1, 5, PLACING_ME)],
            NOWHERE,
            [(0, 2)],
            id="an offset below ours on another partition is not before it",
        ),
        pytest.param(
            [on(1, 5, PLACING_ME), on(1, 6, PLACING_THEM), on(0, 12, PLACING_THEM)],
            Position(0, 9),
            [(0, 12)],
            id="after ours on its partition does not count, on the other it does",
        ),
        pytest.param(
            [on(0, 11, PLACING_ME), on(1, 5, PLACING_ME), on(0, 12, PLACING_THEM)],
            Position(0, 9),
            [],
            id="a copy of ours before theirs on their partition",
        ),
        pytest.param(
            [on(0, 13, PLACING_ME), on(1, 5, PLACING_ME), on(0, 12, PLACING_THEM)],
            Position(0, 9),
            [(0, 12)],
            id="our copies after theirs or elsewhere",
        ),
        pytest.param(
            [on(2, 5, None), on(1, 6, PLACING_ME)],
            Position(1, 4),
            [(2, 5)],
            id="a tombstone on another partition counts",
        ),
    ],
)
def test_records_on_other_partitions_than_our_write_count_unless_ours_came_first(
    seen: list[Seen], after: Position, expected: list[tuple[int, int]]
) -> None:
    assert [(s.partition, s.offset) for s in lost(seen, writer=ME, after=after)] == expected


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        pytest.param(Position(0, 4), [(0, 7), (1, 2)], id="after our read on its partition"),
        pytest.param(Position(0, 7), [(1, 2)], id="another partition's records are after"),
        pytest.param(Position(1, 2), [(0, 3), (0, 7)], id="and the other way round"),
        pytest.param(NOWHERE, [(0, 3), (0, 7), (1, 2)], id="nothing read"),
    ],
)
def test_foreign_records_across_partitions(
    after: Position, expected: list[tuple[int, int]]
) -> None:
    seen = [at(3, PLACING_THEM), at(5, PLACING_ME), at(7, DONE_THEM), on(1, 2, DONE_THEM)]
    assert [(s.partition, s.offset) for s in foreign(seen, writer=ME, after=after)] == expected


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


def withdrawal(of: LedgerEntry, by: str, lost_to: list[str]) -> LedgerEntry:
    """``by``'s copy of ``of``, put back after its claim lost to ``lost_to``."""
    return of.model_copy(update={"withdrawn_by": by, "lost_to": lost_to})


PLACING_THIRD = entry(LedgerState.PLACING, source="commands/1/3", writer="job-third")


@pytest.mark.parametrize(
    ("beaten_by", "expected"),
    [
        pytest.param([on(1, 5, PLACING_THEM)], {THEM}, id="one writer"),
        pytest.param(
            [on(1, 5, PLACING_THEM), on(2, 3, PLACING_THIRD)], {THEM, "job-third"}, id="two"
        ),
        pytest.param([on(1, 5, None)], set(), id="an unreadable record: nobody to wait for"),
        pytest.param(
            [on(1, 5, PLACING_THEM), on(1, 6, entry(LedgerState.PLACING, writer=None))],
            set(),
            id="an older version's entry names no writer",
        ),
    ],
)
def test_whom_a_claim_lost_to(beaten_by: list[Seen], expected: set[str]) -> None:
    assert lost_to(beaten_by) == expected


@pytest.mark.parametrize(
    ("seen", "others", "expected"),
    [
        pytest.param([on(1, 5, PLACING_THEM)], {THEM}, False, id="they have not withdrawn"),
        pytest.param(
            [on(1, 5, PLACING_THEM), on(1, 6, withdrawal(PLACING_ME, THEM, [ME]))],
            {THEM},
            True,
            id="they withdrew, having lost to us",
        ),
        pytest.param(
            [on(1, 6, withdrawal(PLACING_THIRD, THEM, ["job-third"]))],
            {THEM},
            False,
            id="they withdrew for another: that one may have won",
        ),
        pytest.param(
            [on(1, 6, withdrawal(PLACING_ME, THEM, [ME, "job-third"]))],
            {THEM, "job-third"},
            False,
            id="one of two withdrew",
        ),
        pytest.param(
            [
                on(1, 6, withdrawal(PLACING_ME, THEM, [ME])),
                on(2, 4, withdrawal(PLACING_ME, "job-third", [ME, THEM])),
            ],
            {THEM, "job-third"},
            True,
            id="both withdrew",
        ),
        pytest.param([], set(), False, id="nobody to wait for is not a withdrawal"),
    ],
)
def test_when_every_claim_lost(seen: list[Seen], others: set[str], expected: bool) -> None:
    assert withdrew(seen, writer=ME, others=frozenset(others)) is expected


def test_a_withdrawal_is_the_entry_it_copies_for_what_to_put_back() -> None:
    """The marks do not make a copy another entry: put back once, not every round."""
    seen = [
        on(1, 5, PLACING_THEM),
        on(0, 6, PLACING_ME),
        on(0, 7, withdrawal(PLACING_THEM, ME, [THEM])),
    ]
    assert to_put_back(seen, writer=ME, copied=set()) is None
