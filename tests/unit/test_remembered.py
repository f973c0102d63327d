"""What the ledger remembers of each command: whole entries, compact places, and forgetting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.commands.remembered import FULL_FOR, Known, Remembered, Shard, replaces
from bridge.contracts.commands import ResultStatus
from bridge.contracts.ledger import LedgerState

PLACING, PENDING, DONE = LedgerState.PLACING, LedgerState.PENDING, LedgerState.DONE
RETENTION = 7 * 86400.0
NOW = 1_800_000_000.0


def known(
    state: LedgerState, partition: int = 0, offset: int = 10, status: ResultStatus | None = None
) -> Known:
    if state is DONE and status is None:
        status = ResultStatus.PLACED
    return Known(partition, offset, state, status, f"{state}@{partition}/{offset}".encode())


@pytest.mark.parametrize(
    ("before", "partition", "offset", "state", "expected"),
    [
        pytest.param(None, 0, 5, PENDING, True, id="nothing known"),
        pytest.param(known(PENDING), 0, 11, PLACING, True, id="later on the partition"),
        pytest.param(
            known(DONE), 0, 11, PLACING, False, id="a paused worker's late placing after done"
        ),
        pytest.param(known(DONE), 0, 11, PENDING, False, id="nor a late pending"),
        pytest.param(known(DONE), 0, 11, DONE, True, id="a later done on the partition"),
        pytest.param(known(PLACING), 0, 9, PENDING, False, id="earlier on the partition"),
        pytest.param(
            known(PLACING), 0, 9, DONE, True, id="a done before a paused worker's placing"
        ),
        pytest.param(known(PLACING), 0, 10, DONE, False, id="our own write read back"),
        pytest.param(known(DONE), 0, 11, None, True, id="a later tombstone"),
        pytest.param(known(DONE), 1, 3, PENDING, False, id="done stays over pending elsewhere"),
        pytest.param(known(DONE), 1, 99, PLACING, False, id="done stays over placing elsewhere"),
        pytest.param(known(PENDING), 1, 3, DONE, True, id="done elsewhere over pending"),
        pytest.param(known(DONE), 1, 3, DONE, True, id="done elsewhere over done"),
        pytest.param(known(PLACING), 1, 3, PENDING, False, id="placing stays over pending"),
        pytest.param(known(PENDING), 1, 3, PLACING, True, id="placing elsewhere over pending"),
        pytest.param(known(PLACING), 1, 3, PLACING, True, id="the same state: the later read"),
        pytest.param(known(PENDING), 1, 30, None, False, id="never a tombstone elsewhere"),
    ],
)
def test_which_record_takes_a_commands_place(
    before: Known | None, partition: int, offset: int, state: LedgerState | None, expected: bool
) -> None:
    assert replaces(before, partition, offset, state) is expected


def memory() -> Remembered:
    return Remembered(RETENTION)


def compact(entry: Known) -> Known:
    return entry._replace(value=None)


# (what is put: (id, entry, written seconds before NOW)), when to look (seconds after NOW),
# what is then remembered of "a" (None: nothing), and (whole, by hash) sizes.
Put = tuple[str, Known, float]
CASES: list[tuple[str, list[Put], float, Known | None, tuple[int, int]]] = [
    ("a recent done stays whole", [("a", known(DONE), 0)], 1, known(DONE), (1, 0)),
    ("an older done keeps only its place", [("a", known(DONE), FULL_FOR + 1)], 0,
     compact(known(DONE)), (0, 1)),
    ("a recent done keeps its place once FULL_FOR has passed", [("a", known(DONE), 0)],
     FULL_FOR + 1, compact(known(DONE)), (0, 1)),
    ("the status of a done without a call is kept",
     [("a", known(DONE, status=ResultStatus.EXPIRED), FULL_FOR + 1)], 0,
     compact(known(DONE, status=ResultStatus.EXPIRED)), (0, 1)),
    ("an unfinished entry stays whole past FULL_FOR", [("a", known(PLACING), 0)],
     FULL_FOR + 1, known(PLACING), (1, 0)),
    ("an unfinished entry is forgotten after the retention", [("a", known(PENDING), 0)],
     RETENTION + 1, None, (0, 0)),
    ("a done is forgotten after the retention", [("a", known(DONE), 0)], RETENTION + 1,
     None, (0, 0)),
    ("an older done is forgotten after the retention", [("a", known(DONE), 3600)],
     RETENTION - 3599, None, (0, 0)),
    ("placing replaced by done", [("a", known(PLACING), 5), ("a", known(DONE, offset=11), 4)],
     FULL_FOR + 10, compact(known(DONE, offset=11)), (0, 1)),
    ("an old placing replaced by an old done leaves no whole entry",
     [("a", known(PLACING), FULL_FOR + 9), ("a", known(DONE, offset=11), FULL_FOR + 8)], 0,
     compact(known(DONE, offset=11)), (0, 1)),
    ("a place rewritten later is not forgotten with the first",
     [("a", known(DONE), 3600), ("a", known(PLACING, offset=20), 60),
      ("a", known(DONE, offset=21), 50)],
     RETENTION - 3000, compact(known(DONE, offset=21)), (0, 1)),
    ("a whole entry over an older place", [("a", known(DONE), 3600),
                                           ("a", known(PENDING, offset=20), 0)],
     1, known(PENDING, offset=20), (1, 1)),
    ("others do not disturb it", [("a", known(DONE), 3600), ("b", known(DONE, 1), 3600),
                                  ("c", known(PLACING, 2), 0)],
     0, compact(known(DONE)), (1, 2)),
]  # fmt: skip


@pytest.mark.parametrize(("puts", "later", "expected", "sizes"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])  # fmt: skip
def test_what_is_remembered_of_a_command(
    puts: list[Put], later: float, expected: Known | None, sizes: tuple[int, int]
) -> None:
    m = memory()
    for command_id, entry, ago in puts:
        m.put(command_id, entry, written_at=NOW - ago, now=NOW)
        m.expire(NOW)
    m.expire(NOW + later)
    assert m.lookup("a") == expected
    assert m.sizes()[:2] == sizes


def test_a_tombstone_forgets_both_the_whole_entry_and_the_place() -> None:
    m = memory()
    m.put("a", known(DONE), written_at=NOW - 3600, now=NOW)
    m.put("a", known(PLACING, offset=20), written_at=NOW, now=NOW)
    m.forget("a")
    assert m.lookup("a") is None
    assert len(m) == 0


def test_ids_sharing_a_hash_look_known_until_the_last_of_them_expires() -> None:
    """A collision errs towards "known": never an id forgotten before its own expiry."""
    m = Remembered(RETENTION, hash_id=lambda command_id: 42)
    first, second = known(DONE, 0, 10), known(DONE, 3, 7, ResultStatus.FAILED)
    m.put("a", first, written_at=NOW - 7200, now=NOW)
    m.put("b", second, written_at=NOW - 3600, now=NOW)
    assert m.lookup("a") == compact(second)  # another id's place: read back, the key tells
    assert m.lookup("new") == compact(second)  # an id never seen looks finished too
    m.expire(NOW + RETENTION - 7000)  # past a's expiry, not b's
    assert m.lookup("a") == compact(second)
    m.expire(NOW + RETENTION - 3000)
    assert m.lookup("a") is None


def test_a_done_whose_place_does_not_fit_the_packing_stays_whole() -> None:
    m = memory()
    huge = known(DONE, offset=1 << 50)
    m.put("a", huge, written_at=NOW - 3600, now=NOW)
    assert m.lookup("a") == huge


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["put", "delete"]), st.integers(-64, 64), st.integers(0, 99)),
        max_size=300,
    )
)
def test_the_hash_table_behaves_as_a_dict(ops: list[tuple[str, int, int]]) -> None:
    """Small keys share low bits, so probes run long and deletions shift entries back."""
    shard, model = Shard(), dict[int, int]()
    for op, small, value in ops:
        key = small * 16 or 1  # 0 marks an empty slot
        if op == "put":
            shard.put(key, value)
            model[key] = value
        else:
            shard.delete(key)
            model.pop(key, None)
        assert shard.count == len(model)
    for key in range(-64 * 16, 64 * 16 + 1, 16):
        assert shard.get(key or 1) == model.get(key or 1, -1)
