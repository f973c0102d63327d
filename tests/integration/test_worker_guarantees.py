"""At most one call and exactly one result per command while workers come and go.

Real Kafka, the sandbox as FoneStorm, workers in-process. The interleavings are forced, not
hoped for: the sandbox's ``hold`` fault keeps create-call requests waiting until released, so
a rebalance or a shutdown happens at a known point of a command's life.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from bridge.commands.admission import PLACING_PER_SLOT
from bridge.commands.records import source_of
from bridge.commands.trimming import ELLIPSIS, TRIM_LIMITS
from bridge.contracts.commands import PlaceCallResult, ResultStatus
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
from tests.support.kafka_broker import NewTopicFactory
from tests.support.kafka_records import consume_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def all_results(loop: Loop) -> list[dict[str, Any]]:
    """Every result on the topic, read for long enough that a late second one would show."""
    records = await consume_for(
        loop.settings.kafka.bootstrap_servers, loop.settings.topics.place_call_results, seconds=2
    )
    return [json.loads(r.value) for r in records]


def one_each(loop: Loop, ids: list[str], results: list[dict[str, Any]]) -> Counter[str]:
    """Assert at most one call and exactly one result per command; the statuses, counted."""
    calls = loop.calls_per_command()
    assert all(calls[i] <= 1 for i in ids), {i: calls[i] for i in ids if calls[i] > 1}
    per_command = Counter(r["command_id"] for r in results)
    assert per_command == Counter(ids), "not exactly one result per command"
    for r in results:  # every call that exists is reported
        if calls[r["command_id"]]:
            assert r["status"] in ("placed", "in_doubt"), r
    return Counter(r["status"] for r in results)


async def test_rebalance_with_requests_out_and_commands_waiting_in_the_limiter(
    start_bridge: BridgeFactory,
) -> None:
    # 16 commands in flight, one token in the first worker's rate limiter and the next one an
    # hour away: all but the first wait in the limiter when the second worker joins. They must
    # be cancelled at once (the revocation only waits for requests already out): a revocation
    # that waited for them would never end, and the second worker never get its share.
    worker = {"rate_limit": 1 / 3600, "max_in_flight": 16, "rebalance_timeout": 25.0}
    async with closed_loop(start_bridge, fonestorm={"read_timeout": 10.0}, worker=worker) as loop:
        first = worker_of(loop.bridge)
        loop.sandbox.state.update_faults({"hold": True})
        ids = [f"rebalance-{n}-{uuid.uuid4()}" for n in range(20)]
        await loop.send(*(command(i) for i in ids))
        await eventually(lambda: loop.sandbox.state.held >= 1, what="a held request")
        second = worker_of(await second_worker(start_bridge, loop, rate_limit=20.0))
        owned = [tp for tp in _partitions(loop) if first.owns(tp)]
        await eventually(lambda: any(not first.owns(tp) for tp in owned), what="a revocation")
        # The revocation waits for the held request: release it mid-rebalance.
        loop.sandbox.state.update_faults({"hold": False})
        await eventually(lambda: any(second.owns(tp) for tp in _partitions(loop)), what="B's share")
        # The rest is placed by the second worker, at its own rate, once the first has left.
        await loop.bridge.runner.cleanup()
        await loop.results(len(ids), timeout=60)
        assert one_each(loop, ids, await all_results(loop)) == {"placed": len(ids)}


async def test_create_call_requests_never_exceed_max_in_flight(
    start_bridge: BridgeFactory,
) -> None:
    """The worker holds more commands than slots; only max_in_flight requests go out, and
    only PLACING_PER_SLOT times as many commands have ``placing`` on the ledger unanswered."""
    # Two commands send and are held at FoneStorm; the other four are in hand meanwhile and
    # finish their holds while the first two are still out. Without a bound on sending (as
    # when the hold alone freed a slot), four or more requests would be out at once.
    worker = {"max_in_flight": 2, "rate_limit": 1000}
    async with closed_loop(
        start_bridge, fonestorm=PATIENT, worker=worker, callbacks={"correlation_hold": 0.2}
    ) as loop:
        loop.sandbox.state.update_faults({"hold": True})
        ids = [f"bounded-{n}-{uuid.uuid4()}" for n in range(6)]
        await loop.send(*(command(i) for i in ids))
        await eventually(lambda: loop.sandbox.state.held >= 2, what="two held requests")
        await asyncio.sleep(1.0)  # well past every hold of the commands started meanwhile
        assert loop.sandbox.state.held == 2
        # Each of these is in_doubt if the worker dies now: the two out and two waiting.
        assert len(await placing_now(loop)) == PLACING_PER_SLOT * 2
        loop.sandbox.state.update_faults({"hold": False})
        await loop.results(len(ids), timeout=30)
        assert one_each(loop, ids, await all_results(loop)) == {"placed": len(ids)}


async def test_restart_on_a_large_ledger_places_nothing_its_predecessor_finished(
    start_bridge: BridgeFactory,
) -> None:
    """A worker reads 200,000 ledger entries before it starts a single command."""
    async with closed_loop(start_bridge, ready=False, worker={"rate_limit": 1000}) as loop:
        await loop.bridge.runner.cleanup()  # the predecessor: gone, its offsets uncommitted
        settings = loop.settings
        ids = [f"finished-{n}-{uuid.uuid4()}" for n in range(20)]
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka.bootstrap_servers,
            linger_ms=50,
            acks=1,
            max_batch_size=512 * 1024,
        )
        await producer.start()
        try:
            sources = {}
            for command_id in ids:
                meta = await producer.send_and_wait(
                    settings.topics.place_call,
                    command(command_id).model_dump_json().encode(),
                    key=command_id.encode(),
                )
                sources[command_id] = source_of(meta.topic, meta.partition, meta.offset)
            now = datetime.now(UTC)
            # send() only enqueues (waiting while a batch is full); acks come at the flush.
            for n in range(200_000):
                key = f"old-{n}"
                await producer.send(
                    settings.topics.command_ledger, _entry(key, now), key=key.encode()
                )
            # Last, so that only a worker that read the whole ledger knows them.
            for command_id in ids:
                done = LedgerEntry(
                    command_id=command_id,
                    state=LedgerState.DONE,
                    source=sources[command_id],
                    updated_at=now,
                    result=PlaceCallResult(
                        command_id=command_id,
                        status=ResultStatus.PLACED,
                        call_id=f"call-of-{command_id}",
                        attempts=1,
                        received_at=now,
                        finished_at=now,
                    ),
                )
                await producer.send(
                    settings.topics.command_ledger,
                    done.model_dump_json().encode(),
                    key=command_id.encode(),
                )
            await producer.flush()
        finally:
            await producer.stop()
        await second_worker(start_bridge, loop)
        results = await loop.results(len(ids), timeout=90)
        assert loop.calls_per_command() == Counter()
        assert {r["command_id"]: r["call_id"] for r in results} == {i: f"call-of-{i}" for i in ids}


async def test_shutdown_mid_backoff_leaves_the_command_to_be_placed_not_in_doubt(
    start_bridge: BridgeFactory,
) -> None:
    """What SIGTERM runs: the app's cleanup, while a command waits out a 429's Retry-After."""
    # A backoff longer than the test may run: a shutdown that waited it out would time out.
    async with closed_loop(start_bridge, worker={"max_retry_seconds": 7200}) as loop:
        loop.sandbox.state.update_faults({"rate_limit_next": 1, "retry_after": 3600})
        cmd = command(f"backoff-{uuid.uuid4()}")
        await loop.send(cmd)
        await eventually(
            lambda: any(r.fault == "rate_limit" for r in loop.sandbox.state.requests),
            what="the 429",
        )
        await asyncio.sleep(0.2)  # the answer is recorded; the command backs off for an hour
        await loop.bridge.runner.cleanup()
        ledger = await consume_for(
            loop.settings.kafka.bootstrap_servers, loop.settings.topics.command_ledger, seconds=1
        )
        states = [json.loads(r.value)["state"] for r in ledger]
        assert states == ["placing", "pending"]
        await second_worker(start_bridge, loop)
        [result] = await loop.results(1)
        assert result["status"] == "placed"
        assert loop.calls_per_command() == Counter({cmd.command_id: 1})


async def test_401_outage_longer_than_max_poll_interval_keeps_the_group(
    start_bridge: BridgeFactory,
) -> None:
    worker = {"max_poll_interval": 2.0, "auth_retry_interval": 0.3, "max_in_flight": 4}
    async with closed_loop(start_bridge, worker=worker) as loop:
        first = worker_of(loop.bridge)
        generation = first.generation
        loop.sandbox.state.update_faults({"unauthorized": True})
        ids = [f"auth-{n}-{uuid.uuid4()}" for n in range(12)]
        await loop.send(*(command(i) for i in ids))
        await asyncio.sleep(5.0)  # more than twice max.poll.interval, every slot busy
        assert first.generation == generation, "the worker left its group"
        assert not first.ready
        loop.sandbox.state.update_faults({"unauthorized": False})
        await loop.results(len(ids), timeout=30)
        assert one_each(loop, ids, await all_results(loop)) == {"placed": len(ids)}
        assert first.generation == generation


async def test_unknown_fields_are_ignored_and_hostile_ids_rejected_precisely(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge) as loop:
        future = command(f"future-{uuid.uuid4()}").model_dump(mode="json")
        future["priority"] = "high"  # a field v1 does not know yet
        hostile = {
            "line\nbreak": "must be printable ASCII: '\\n' at position 4 is not",
            "x" * 129: "at most 128 characters",
            "caf\u00e9": "must be printable ASCII: 'é' at position 3 is not",
        }
        for command_id in hostile:
            await loop.send(
                json.dumps({**future, "command_id": command_id}).encode(), key=b"hostile"
            )
        await loop.send(json.dumps(future).encode(), key=future["command_id"].encode())
        results = {r["command_id"]: r for r in await loop.results(len(hostile) + 1)}
        assert results[future["command_id"]]["status"] == "placed"
        for command_id, reason in hostile.items():
            assert results[command_id]["status"] == "rejected"
            assert reason in results[command_id]["error_message"]
        letters = await loop.dead_letters(len(hostile))
        assert {letter["reason_code"] for letter in letters} == {"invalid_command"}


async def test_commands_older_than_the_ledger_remembers_end_without_a_call(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge) as loop:
        cmd = command(f"replayed-{uuid.uuid4()}")
        producer = AIOKafkaProducer(bootstrap_servers=loop.settings.kafka.bootstrap_servers)
        await producer.start()
        try:
            eight_days_ago = datetime.now(UTC) - timedelta(days=8)
            await producer.send_and_wait(
                loop.settings.topics.place_call,
                cmd.model_dump_json().encode(),
                key=cmd.command_id.encode(),
                timestamp_ms=int(eight_days_ago.timestamp() * 1000),
            )
        finally:
            await producer.stop()
        [result] = await loop.results(1)
        assert (result["status"], result["error_code"]) == ("expired", "too_old")
        assert loop.calls_per_command() == Counter()


async def test_a_command_too_large_to_dead_letter_whole_is_kept_cut(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge) as loop:
        # ~900 KB, not UTF-8: base64 would exceed 1 MB. Not starting with a zero byte, which
        # would make it a (malformed) schema-registry frame rather than a bad command.
        garbage = bytes(range(255, -1, -1)) * 3500
        await loop.send(garbage, key=b"garbage")
        after = command(f"after-{uuid.uuid4()}")
        await loop.send(after)
        [letter] = await loop.dead_letters(1)
        assert letter["record"]["value_truncated"] is True
        assert letter["reason_code"] == "invalid_command"
        results = {r["command_id"]: r["status"] for r in await loop.results(2)}
        # The key is all the worker could read of the garbage: it gets a rejected result.
        assert results == {"garbage": "rejected", after.command_id: "placed"}


def _partitions(loop: Loop) -> list[TopicPartition]:
    return [TopicPartition(loop.settings.topics.place_call, p) for p in range(3)]


def _entry(command_id: str, now: datetime) -> bytes:
    return (
        LedgerEntry(
            command_id=command_id, state=LedgerState.PENDING, source="elsewhere/0/0", updated_at=now
        )
        .model_dump_json()
        .encode()
    )


async def test_a_result_too_large_for_its_topic_is_published_cut(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    """A command_id larger than the results topic takes still gets its one result."""
    limit = 20_000
    results_topic = await new_topic("results", configs={"max.message.bytes": str(limit)})
    async with closed_loop(start_bridge, topics={"place_call_results": results_topic}) as loop:
        # A result first: the refused one is not the first record of its producer there.
        before = command(f"before-{uuid.uuid4()}")
        await loop.send(before)
        await loop.results(1)
        huge_id = "x" * (limit + 10_000)
        huge = command("placeholder").model_dump(mode="json") | {"command_id": huge_id}
        await loop.send(json.dumps(huge).encode(), key=b"huge")
        await loop.results(2)
        # The partition (the topic has one) still takes the next command's result.
        after = command(f"after-{uuid.uuid4()}")
        await loop.send(after)
        await loop.results(3)
        results = await all_results(loop)
        by_id = {r["command_id"][:100]: r for r in results}
        assert len(results) == len(by_id) == 3
        cut = by_id["x" * 100]
        assert cut["status"] == "rejected"
        assert cut["command_id"] == "x" * TRIM_LIMITS[0] + ELLIPSIS
        assert "at most 128 characters" in cut["error_message"]
        assert f"command_id ({len(huge_id)} characters)" in cut["error_message"]
        assert by_id[before.command_id]["status"] == by_id[after.command_id]["status"] == "placed"
        assert loop.calls_per_command() == Counter({before.command_id: 1, after.command_id: 1})


async def test_revocation_does_not_wait_out_the_backoff_after_a_refusal(
    start_bridge: BridgeFactory,
) -> None:
    """A request out at the revocation is answered 429 with a long Retry-After: no call exists,
    so the command is left ``pending`` at once and the rebalance goes on without waiting."""
    # A revoke budget (80% of 60 s) longer than the test waits for the result: a revocation
    # that waited out the backoff would time the test out.
    worker = {"rebalance_timeout": 60.0, "max_retry_seconds": 7200}
    async with closed_loop(start_bridge, fonestorm=PATIENT, worker=worker) as loop:
        first = worker_of(loop.bridge)
        loop.sandbox.state.update_faults({"hold": True})
        cmd = command(f"revoked-429-{uuid.uuid4()}")
        await loop.send(cmd)
        await eventually(lambda: loop.sandbox.state.held == 1, what="the held request")
        owned = [tp for tp in _partitions(loop) if first.owns(tp)]
        await second_worker(start_bridge, loop)
        await eventually(lambda: any(not first.owns(tp) for tp in owned), what="a revocation")
        loop.sandbox.state.update_faults({"rate_limit_next": 1, "retry_after": 3600})
        loop.sandbox.state.update_faults({"hold": False})
        results = await loop.results(1, timeout=30)
        assert [r["status"] for r in results] == ["placed"], "the revocation waited it out"
        assert loop.calls_per_command() == Counter({cmd.command_id: 1})
