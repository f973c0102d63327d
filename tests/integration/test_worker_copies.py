"""One command under two keys, or written to the ledger by someone else mid-attempt: one call.

Real Kafka, the sandbox as FoneStorm, workers in-process. Copies of a command land on
partitions that different workers own; the interleavings are forced with the sandbox's 429 and
``hold`` faults and with the rate limit, and the ledger is written with a plain producer at a
known point of a command's life, as another worker would.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import (
    PATIENT,
    Loop,
    closed_loop,
    command,
    placing_now,
    second_worker,
    worker_of,
)
from tests.support.kafka_records import consume_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def produce(
    loop: Loop, topic: str, value: bytes, *, key: bytes, partition: int | None = None
) -> None:
    """One record, on ``partition`` or where its key goes (as the bridge's own writers do)."""
    producer = AIOKafkaProducer(bootstrap_servers=loop.settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


async def send_to(loop: Loop, cmd: PlaceCallCommand, tp: TopicPartition, key: bytes) -> None:
    await produce(loop, tp.topic, cmd.model_dump_json().encode(), key=key, partition=tp.partition)


async def ledger_of(loop: Loop, command_id: str) -> list[LedgerEntry]:
    """Every ledger entry of one command, in log order."""
    records = await consume_for(
        loop.settings.kafka.bootstrap_servers, loop.settings.topics.command_ledger, seconds=1
    )
    return [
        LedgerEntry.model_validate_json(r.value)
        for r in sorted(records, key=lambda r: r.offset)
        if r.key == command_id.encode() and r.value is not None
    ]


def foreign_done(command_id: str, call_id: str) -> LedgerEntry:
    """A ``done`` as a worker handling another record of the command would write it."""
    now = datetime.now(UTC)
    return LedgerEntry(
        command_id=command_id,
        state=LedgerState.DONE,
        source="elsewhere/0/7",
        updated_at=now,
        writer="another-worker",
        result=PlaceCallResult(
            command_id=command_id,
            status=ResultStatus.PLACED,
            call_id=call_id,
            attempts=1,
            received_at=now,
            finished_at=now,
        ),
    )


async def test_a_copy_under_another_key_while_the_original_backs_off_rings_once(
    start_bridge: BridgeFactory,
) -> None:
    """The copy on another worker finds the original's ``pending`` and does not place it; the
    original, back from its backoff, places it once."""
    async with closed_loop(start_bridge, worker={"max_retry_seconds": 60}) as loop:
        first = worker_of(loop.bridge)
        second = worker_of(await second_worker(start_bridge, loop))
        topic = loop.settings.topics.place_call
        partitions = [TopicPartition(topic, p) for p in range(3)]
        await eventually(
            lambda: (
                all(first.owns(tp) != second.owns(tp) for tp in partitions)
                and any(first.owns(tp) for tp in partitions)
                and any(second.owns(tp) for tp in partitions)
            ),
            what="both workers owning partitions",
        )
        on_first = next(tp for tp in partitions if first.owns(tp))
        on_second = next(tp for tp in partitions if second.owns(tp))
        loop.sandbox.state.update_faults({"rate_limit_next": 1, "retry_after": 3})
        cmd = command(f"two-keys-{uuid.uuid4()}")
        await send_to(loop, cmd, on_first, key=b"a")
        await eventually(
            lambda: any(r.fault == "rate_limit" for r in loop.sandbox.state.requests),
            what="the original's 429",
        )
        await send_to(loop, cmd, on_second, key=b"b")
        results = await loop.results(2, timeout=30)
        assert sorted(r["status"] for r in results) == ["duplicate", "placed"]
        assert loop.calls_per_command() == Counter({cmd.command_id: 1})
        [placed] = [r for r in results if r["status"] == "placed"]
        [copy] = [r for r in results if r["status"] == "duplicate"]
        assert "being placed from record" in copy["error_message"], copy
        assert placed["call_id"]


async def test_an_entry_written_while_the_command_waits_for_its_turn_stops_it(
    start_bridge: BridgeFactory,
) -> None:
    """Another worker finishes the command between this one's ledger read and its attempt."""
    # One create-call per 5 s: the second command reads the ledger, then waits for a token.
    async with closed_loop(start_bridge, worker={"rate_limit": 0.2}) as loop:
        opener, waiting = command(f"opener-{uuid.uuid4()}"), command(f"waits-{uuid.uuid4()}")
        await loop.send(opener)
        await eventually(lambda: loop.calls_per_command()[opener.command_id] == 1, what="call 1")
        await loop.send(waiting)
        await eventually(
            lambda: worker_of(loop.bridge).handling(waiting.command_id), what="the waiter"
        )
        done = foreign_done(waiting.command_id, "call-made-elsewhere")
        await produce(
            loop,
            loop.settings.topics.command_ledger,
            done.model_dump_json().encode(),
            key=waiting.command_id.encode(),
        )
        by_id = {r["command_id"]: r for r in await loop.results(2, timeout=30)}
        assert by_id[waiting.command_id]["status"] == "duplicate"
        assert by_id[waiting.command_id]["call_id"] == "call-made-elsewhere"
        assert loop.calls_per_command() == Counter({opener.command_id: 1})
        # Nothing was written over the other worker's done.
        assert (await ledger_of(loop, waiting.command_id))[-1] == done


async def test_an_entry_written_after_placing_and_before_the_request_stops_it(
    start_bridge: BridgeFactory,
) -> None:
    """The last look before sending: another worker's entry after this one's ``placing``."""
    worker = {"max_in_flight": 1}
    async with closed_loop(start_bridge, fonestorm=PATIENT, worker=worker) as loop:
        state = loop.sandbox.state
        state.update_faults({"hold": True})
        held, second = command(f"held-{uuid.uuid4()}"), command(f"second-{uuid.uuid4()}")
        await loop.send(held)
        await eventually(lambda: state.held == 1, what="the held request")
        await loop.send(second)
        # The second writes placing, then waits for the one request slot.
        await eventually(
            lambda: _placing_now(loop, second.command_id), what="the second command's placing"
        )
        done = foreign_done(second.command_id, "call-made-elsewhere")
        await produce(
            loop,
            loop.settings.topics.command_ledger,
            done.model_dump_json().encode(),
            key=second.command_id.encode(),
        )
        # Once the worker has read it: the protocol's own writers never write there (their
        # claims would lose), so it is the last look before the request that must catch it.
        await eventually(
            lambda: _has_state(loop, second.command_id, (LedgerState.DONE, done.source)),
            what="the worker reading the other worker's done",
        )
        state.update_faults({"hold": False})
        by_id = {r["command_id"]: r for r in await loop.results(2, timeout=30)}
        assert by_id[held.command_id]["status"] == "placed"
        assert by_id[second.command_id]["status"] == "duplicate"
        assert loop.calls_per_command() == Counter({held.command_id: 1})
        assert (await ledger_of(loop, second.command_id))[-1] == done


async def _placing_now(loop: Loop, command_id: str) -> bool:
    return command_id in await placing_now(loop)


async def _has_state(loop: Loop, command_id: str, expected: tuple[LedgerState, str]) -> bool:
    entry = await worker_of(loop.bridge).ledger_entry(command_id)
    return entry is not None and (entry.state, entry.source) == expected
