"""The ledger as a job reads it: records across partitions, and old entries read back."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata

from bridge.commands.decision import Finish, Republish, decide
from bridge.commands.ledger import NOWHERE, Ledger, Position
from bridge.commands.remembered import FULL_FOR
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState
from bridge.kafka.publisher import Publisher
from bridge.settings import Settings

PLACING, PENDING, DONE = LedgerState.PLACING, LedgerState.PENDING, LedgerState.DONE
SOURCE, ELSEWHERE = "commands/0/41", "commands/2/9"
Record = ConsumerRecord[bytes, bytes]


class Topic:
    """The ledger topic as the follower would read it; ``record_at`` is what Kafka still holds."""

    following = True

    def __init__(self) -> None:
        self.records: dict[tuple[int, int], Record] = {}
        self.read_back: list[tuple[int, int]] = []
        self.partitions = [TopicPartition("ledger", 0)]
        #: What the topic has, which the follower follows once it has looked.
        self.on_cluster: list[TopicPartition] | None = None
        #: What the ledger applies each record read with (given when it builds its follower).
        self.apply: Callable[[Record], None] = lambda record: None

    async def follow_added(self) -> None:
        if self.on_cluster is not None:
            self.partitions = list(self.on_cluster)

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def end_offsets(self) -> dict[TopicPartition, int]:
        return {}

    async def wait_for(self, ends: dict[TopicPartition, int]) -> None: ...
    async def catch_up(self) -> None: ...
    async def record_at(self, partition: int, offset: int) -> Record | None:
        self.read_back.append((partition, offset))
        return self.records.get((partition, offset))


def entry(state: LedgerState, source: str = SOURCE, command_id: str = "c1") -> LedgerEntry:
    now = datetime.now(UTC)
    result = None
    if state is DONE:
        result = PlaceCallResult(
            command_id=command_id, status=ResultStatus.PLACED, call_id="call-9", attempts=1,
            received_at=now, finished_at=now,
        )  # fmt: skip
    return LedgerEntry(
        command_id=command_id, state=state, source=source, result=result, updated_at=now
    )


def record(
    partition: int, offset: int, value: LedgerEntry | None, *, ago: float = 0.0, key: str = "c1"
) -> Record:
    data = None if value is None else value.model_dump_json().encode()
    return ConsumerRecord(
        topic="ledger", partition=partition, offset=offset,
        timestamp=int((time.time() - ago) * 1000), timestamp_type=0, key=key.encode(),
        value=data, checksum=None, serialized_key_size=len(key),
        serialized_value_size=len(data or b""), headers=(),
    )  # fmt: skip


def ledger_on(topic: Topic) -> Ledger:
    def follow(name: str, apply: Callable[[Record], None], on_batch: object) -> Any:
        topic.apply = apply
        return topic

    return Ledger(Settings(), cast(Publisher, None), follow=follow)


def read(ledger: Ledger, topic: Topic, *records: Record) -> None:
    """The follower of ``ledger`` reads ``records``."""
    for r in records:
        topic.records[(r.partition, r.offset)] = r
        topic.apply(r)


# Partitions added to the ledger: the key of c1 moved from partition 0 to partition 1. The
# follower reads the two partitions in no particular order, at start-up and after.
@pytest.mark.parametrize(
    ("records", "state", "position"),
    [
        pytest.param([(1, 3, DONE), (0, 50, PENDING)], DONE, (1, 3), id="done, then pending"),
        pytest.param([(0, 50, PENDING), (1, 3, DONE)], DONE, (1, 3), id="pending, then done"),
        pytest.param([(0, 50, PLACING), (1, 3, DONE)], DONE, (1, 3), id="placing, then done"),
        pytest.param([(1, 3, DONE), (0, 50, PLACING)], DONE, (1, 3), id="done, then placing"),
        pytest.param([(1, 3, PLACING), (0, 50, PENDING)], PLACING, (1, 3), id="placing stays"),
        pytest.param([(0, 50, PENDING), (1, 3, PLACING)], PLACING, (1, 3), id="placing over"),
        pytest.param([(0, 50, PENDING), (0, 51, DONE)], DONE, (0, 51), id="in log order"),
        pytest.param(
            [(0, 50, DONE), (0, 51, PENDING)], DONE, (0, 50), id="a late pending after done"
        ),
        pytest.param([(1, 3, DONE), (0, 50, None)], DONE, (1, 3), id="a tombstone elsewhere"),
    ],
)
async def test_a_commands_entries_on_two_partitions(
    records: list[tuple[int, int, LedgerState | None]],
    state: LedgerState,
    position: tuple[int, int],
) -> None:
    topic = Topic()
    ledger = ledger_on(topic)
    read(ledger, topic, *(record(p, o, s and entry(s)) for p, o, s in records))
    found = await ledger.get("c1")
    assert found is not None
    assert found.state is state
    assert ledger.version("c1") == Position(*position)


async def test_a_tombstone_on_the_partition_forgets_the_command() -> None:
    topic = Topic()
    ledger = ledger_on(topic)
    read(ledger, topic, record(0, 5, entry(DONE)), record(0, 6, None))
    assert await ledger.get("c1") is None
    assert ledger.version("c1") == NOWHERE


def decided(found: LedgerEntry | None) -> Finish | Republish | None:
    command = PlaceCallCommand(command_id="c1", fonenumber="3215551081", to="3215550100")
    action = decide(
        command, found, source=SOURCE, now=datetime.now(UTC), written_at=None,
        retention=Settings().worker.ledger_retention, delivery="at-most-once", refusal=None,
    )  # fmt: skip
    assert isinstance(action, Finish | Republish), action
    return action


OLD = FULL_FOR + 60


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        pytest.param("the record", ("republish", "call-9"), id="read back: the same record"),
        pytest.param("another key", ("duplicate", None), id="another id with the same hash"),
        pytest.param("nothing", ("duplicate", None), id="the record is gone"),
    ],
)
async def test_an_old_done_is_read_back_when_a_job_needs_it(
    held: str, expected: tuple[str, str | None]
) -> None:
    topic = Topic()
    ledger = ledger_on(topic)
    read(ledger, topic, record(0, 4, entry(PLACING), ago=OLD), record(0, 5, entry(DONE), ago=OLD))
    ledger.forget_expired(time.time())
    if held == "another key":
        topic.records[(0, 5)] = record(0, 5, entry(DONE, command_id="c2"), key="c2")
    elif held == "nothing":
        del topic.records[(0, 5)]
    found = await ledger.get("c1")
    assert topic.read_back == [(0, 5)]
    assert found is not None
    assert found.state is DONE
    action = decided(found)
    if isinstance(action, Republish):
        assert ("republish", action.result.call_id) == expected
    else:
        assert (action.status.value, action.call_id) == expected
        assert action is not None
        assert "already finished as placed" in action.message


async def test_a_recent_done_is_not_read_back() -> None:
    topic = Topic()
    ledger = ledger_on(topic)
    read(ledger, topic, record(0, 5, entry(DONE, source=ELSEWHERE)))
    found = await ledger.get("c1")
    assert found is not None
    assert found.source == ELSEWHERE
    assert topic.read_back == []


P0, P1 = TopicPartition("ledger", 0), TopicPartition("ledger", 1)


@pytest.mark.parametrize(
    ("partitions", "on_cluster", "expected"),
    [
        pytest.param([P0, P1], None, {P0: 10, P1: 8}, id="every partition"),
        pytest.param([P1], None, {P1: 8}, id="one partition: itself"),
        pytest.param([P1], [P0, P1], {P0: 10, P1: 8}, id="one followed, two on the cluster"),
    ],
)
async def test_what_a_write_is_read_back_with(
    partitions: list[TopicPartition],
    on_cluster: list[TopicPartition] | None,
    expected: dict[TopicPartition, int],
) -> None:
    """Another writer's claim may be on another partition while producers have not seen
    partitions added to the ledger yet: reading our write back must read that one too."""
    topic = Topic()
    waited: list[dict[TopicPartition, int]] = []

    async def end_offsets() -> dict[TopicPartition, int]:
        return {P0: 10, P1: 5}

    async def wait_for(ends: dict[TopicPartition, int]) -> None:
        waited.append(ends)

    topic.end_offsets = end_offsets  # type: ignore[method-assign]
    topic.wait_for = wait_for  # type: ignore[method-assign]
    topic.partitions = partitions
    topic.on_cluster = on_cluster
    ledger = Ledger(
        Settings(topics={"command_ledger": "ledger"}),
        cast(Publisher, None),
        follow=lambda *_: cast(Any, topic),
    )
    await ledger.read_back(RecordMetadata("ledger", 1, P1, 7, 0, 0, 0))
    assert waited == [expected]
