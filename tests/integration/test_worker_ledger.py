"""The worker's ledger across versions and faults: real Kafka, the sandbox as FoneStorm."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from bridge.commands.ledger import Ledger
from bridge.commands.records import source_of
from bridge.contracts.commands import PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState
from bridge.kafka.follower import Apply, TopicFollower
from bridge.kafka.partitioner import partition_for
from bridge.kafka.publisher import Publisher
from bridge.settings import Settings
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import closed_loop, command, second_worker
from tests.support.topics import add_partitions

pytestmark = pytest.mark.integration


def newer_done(command_id: str, *, in_result: bool, at_top: bool) -> bytes:
    """A ``done`` entry as a newer worker would write it: with fields this version lacks."""
    now = datetime.now(UTC)
    result = PlaceCallResult(
        command_id=command_id, status=ResultStatus.PLACED, call_id=f"call-of-{command_id}",
        attempts=1, received_at=now, finished_at=now,
    )  # fmt: skip
    entry = LedgerEntry(
        command_id=command_id, state=LedgerState.DONE, source="elsewhere/0/1", result=result,
        updated_at=now,
    )  # fmt: skip
    data = json.loads(entry.model_dump_json())
    if in_result:
        data["result"]["billed_seconds"] = 42
    if at_top:
        data["lease_epoch"] = 7
    return json.dumps(data).encode()


async def test_a_rolled_back_worker_reads_a_newer_workers_done_entries(
    start_bridge: BridgeFactory,
) -> None:
    """A newer worker finished these commands (and compaction removed their ``placing``);
    after a rollback a copy of each is a duplicate, not a second call."""
    async with closed_loop(start_bridge, ready=False) as loop:
        await loop.bridge.runner.cleanup()  # the newer worker, gone
        fields = {
            "in-result": {"in_result": True, "at_top": False},
            "at-top": {"in_result": False, "at_top": True},
            "both": {"in_result": True, "at_top": True},
        }
        ids = {f"{name}-{uuid.uuid4()}": where for name, where in fields.items()}
        producer = AIOKafkaProducer(bootstrap_servers=loop.settings.kafka.bootstrap_servers)
        await producer.start()
        try:
            for command_id, where in ids.items():
                await producer.send_and_wait(
                    loop.settings.topics.command_ledger,
                    newer_done(command_id, **where),
                    key=command_id.encode(),
                )
        finally:
            await producer.stop()
        await loop.send(*(command(command_id) for command_id in ids))
        await second_worker(start_bridge, loop)  # reads the whole ledger before any command
        results = await loop.results(len(ids))
        assert {r["command_id"]: (r["status"], r["call_id"]) for r in results} == {
            command_id: ("duplicate", f"call-of-{command_id}") for command_id in ids
        }
        assert loop.calls_per_command() == Counter()


async def test_a_failing_ledger_read_is_reported_and_reads_on_when_it_can(
    start_bridge: BridgeFactory,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A record the worker cannot apply (a bug), until the test lifts it: the worker's ledger
    # follows its topic through a follower whose apply fails on it (Ledger's ``follow`` seam).
    poisoned = True

    def poisoned_ledger(settings: Settings, publisher: Publisher) -> Ledger:
        def follow(topic: str, apply: Apply, on_batch: Callable[[], None]) -> TopicFollower:
            def apply_or_fail(record: ConsumerRecord[bytes, bytes]) -> None:
                if poisoned and record.key == b"poison":
                    raise RuntimeError("cannot apply this record")
                apply(record)

            return TopicFollower(settings.kafka, topic, apply_or_fail, on_batch=on_batch)

        return Ledger(settings, publisher, follow=follow)

    monkeypatch.setattr("bridge.commands.service.Ledger", poisoned_ledger)
    async with closed_loop(start_bridge) as loop:
        finished = f"finished-{uuid.uuid4()}"
        producer = AIOKafkaProducer(bootstrap_servers=loop.settings.kafka.bootstrap_servers)
        await producer.start()
        try:
            ledger_topic = loop.settings.topics.command_ledger
            await producer.send_and_wait(ledger_topic, b"{}", key=b"poison")
            # After the poison: only a read that went on past it knows this command.
            done = newer_done(finished, in_result=False, at_top=False)
            await producer.send_and_wait(ledger_topic, done, key=finished.encode())
        finally:
            await producer.stop()
        await eventually_readiness(http, loop.bridge.url, ready=False)
        failures = [
            r
            for r in caplog.records
            if r.name == "bridge.kafka.follower" and r.levelname == "ERROR"
        ]
        assert failures, "the failure was not logged at ERROR"
        poisoned = False
        await eventually_readiness(http, loop.bridge.url, ready=True)
        await loop.send(command(finished))
        [result] = await loop.results(1)
        assert (result["status"], result["call_id"]) == ("duplicate", f"call-of-{finished}")
        assert loop.calls_per_command() == Counter()


async def eventually_readiness(
    http: aiohttp.ClientSession, url: str, *, ready: bool, timeout: float = 30.0
) -> None:
    """Until ``/readyz`` reports the ledger check ``ready`` (and the whole answer with it)."""
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(f"{url}/readyz") as response:
            body = await response.json()
        if body["checks"].get("ledger") is ready and (response.status == 200) is ready:
            return
        assert time.monotonic() < deadline, f"/readyz never said ledger={ready}: {body}"
        await asyncio.sleep(0.05)


async def test_a_done_on_a_partition_added_to_the_ledger_while_running_is_followed(
    start_bridge: BridgeFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Partitions added to the ledger move a command's key: its ``done`` on the new partition
    counts, and a ``pending`` of the same record on the old one does not hide it."""
    monkeypatch.setattr(TopicFollower, "partitions_check", 0.2)
    caplog.set_level(logging.INFO, logger="bridge.kafka.follower")
    async with closed_loop(start_bridge) as loop:
        settings = loop.settings
        ledger_topic, commands = settings.topics.command_ledger, settings.topics.place_call
        await add_partitions(settings.kafka.bootstrap_servers, ledger_topic, 4)
        # An id whose key the ledger's four partitions put elsewhere than on partition 0.
        command_id = next(
            i for i in (f"moved-{uuid.uuid4()}" for _ in range(100))
            if partition_for(i.encode(), range(4), range(4)) != 0
        )  # fmt: skip
        moved_to = partition_for(command_id.encode(), range(4), range(4))
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
        await producer.start()
        try:
            # The command record will be the next one on partition 0 of the commands topic.
            ends = await end_offsets(settings.kafka.bootstrap_servers, commands, 0)
            source = source_of(commands, 0, ends)
            done = newer_done(command_id, in_result=False, at_top=False)
            await producer.send_and_wait(
                ledger_topic, done, key=command_id.encode(), partition=moved_to
            )
            # Written after the done by a producer that has not seen the new partitions: to the
            # same record, the pending alone would have the worker place the call.
            pending = LedgerEntry(
                command_id=command_id, state=LedgerState.PENDING, source=source,
                updated_at=datetime.now(UTC),
            )  # fmt: skip
            await producer.send_and_wait(
                ledger_topic, pending.model_dump_json().encode(), key=command_id.encode(),
                partition=0,
            )  # fmt: skip
            # Both followers of the ledger (the worker's and the receiver's) see the partitions.
            assert await until(lambda: len(added_logged(caplog, ledger_topic)) >= 2, seconds=15)
            meta = await producer.send_and_wait(
                commands, command(command_id).model_dump_json().encode(),
                key=command_id.encode(), partition=0,
            )  # fmt: skip
            assert source_of(meta.topic, meta.partition, meta.offset) == source
        finally:
            await producer.stop()
        [result] = await loop.results(1)
        assert (result["command_id"], result["status"], result["call_id"]) == (
            command_id, "duplicate", f"call-of-{command_id}",
        )  # fmt: skip
        assert loop.calls_per_command() == Counter()


async def until(check: Callable[[], bool], *, seconds: float) -> bool:
    """Whether ``check()`` came true within ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def added_logged(caplog: pytest.LogCaptureFixture, topic: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "bridge.kafka.follower" and "added to" in r.getMessage()
        and topic in r.getMessage()
    ]  # fmt: skip


async def end_offsets(bootstrap: str, topic: str, partition: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        ends: dict[TopicPartition, int] = await consumer.end_offsets([tp])
        return ends[tp]
    finally:
        await consumer.stop()


async def test_two_copies_whose_claims_both_lose_across_ledger_partitions_end_failed(
    start_bridge: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after partitions were added to the ledger, producers disagree on a key's partition.

    Worker A has written to the ledger before (its producer's metadata says one partition);
    worker B starts after (two). A command and its copy reach A and B at once: each claim is
    read back during a long correlation hold, each sees the other's on the other partition,
    and both lose. Neither may call; the command must still get an outcome, the same for both.
    """
    hold = {"correlation_hold": 1.0}
    monkeypatch.setattr(TopicFollower, "partitions_check", 3600.0)
    async with closed_loop(start_bridge, callbacks=hold) as loop:
        first = loop.settings

        async def produce(topic: str, value: bytes, *, key: bytes) -> None:
            producer = AIOKafkaProducer(bootstrap_servers=first.kafka.bootstrap_servers)
            await producer.start()
            try:
                await producer.send_and_wait(topic, value, key=key)
            finally:
                await producer.stop()

        await loop.send(command(f"warm-{uuid.uuid4()}"))  # A's producer learns the ledger
        [warm] = await loop.results(1)
        assert warm["status"] == "placed"
        # A's producer has met every topic it writes (its first record to a topic refreshes
        # its metadata: the ledger's partition count too).
        await loop.events(1)
        await add_partitions(first.kafka.bootstrap_servers, first.topics.command_ledger, 2)
        topics = first.topics.model_dump()
        del topics["place_call"]  # B reads commands of its own topic
        b = await start_bridge(
            ready=True, worker_enabled=True, topics=topics, callbacks=hold,
            fonestorm=first.fonestorm.model_dump(), worker=first.worker.model_dump(),
            http={"shutdown_timeout": 2.0},
        )  # fmt: skip
        # B's turn to warm up: assigned, and its producer knows the ledger's two partitions.
        warm_b = command(f"warm-{uuid.uuid4()}").model_dump_json().encode()
        await produce(b.settings.topics.place_call, warm_b, key=b"warm-b")
        await loop.results(2)
        # A's producer puts the key on partition 0, B's on partition 1.
        command_id = next(
            i for i in (f"split-{uuid.uuid4()}" for _ in range(100))
            if partition_for(i.encode(), range(2), range(2)) == 1
        )  # fmt: skip
        value = command(command_id).model_dump_json().encode()
        # B first: its placing lands on partition 1, which A's follower has not looked for.
        bootstrap, ledger_topic = first.kafka.bootstrap_servers, first.topics.command_ledger
        before = await end_offsets(bootstrap, ledger_topic, 1)
        await produce(b.settings.topics.place_call, value, key=b"copy-b")
        await until_async(lambda: ledger_grew(bootstrap, ledger_topic, 1, before), seconds=15)
        # A reads the ledger without B's placing, writes its own on partition 0 while B's
        # claim is still held, and reads its write back with partition 1: both claims lose.
        await produce(first.topics.place_call, value, key=b"copy-a")
        results = [r for r in await loop.results(4, timeout=60) if r["command_id"] == command_id]
        assert [(r["status"], r["error_code"]) for r in results] == [
            ("failed", "claim_conflict"), ("failed", "claim_conflict"),
        ]  # fmt: skip
        assert loop.calls_per_command()[command_id] == 0


async def until_async(check: Callable[[], Awaitable[bool]], *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def ledger_grew(bootstrap: str, topic: str, partition: int, before: int) -> bool:
    """Whether ``partition`` of the ledger holds a record more than ``before``."""
    return await end_offsets(bootstrap, topic, partition) > before
