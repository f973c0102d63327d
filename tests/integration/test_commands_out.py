"""Place-call commands through the real worker, the real Kafka and the sandbox as FoneStorm."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from pydantic import SecretStr

from bridge.commands.worker import IN_HAND_PER_SLOT
from bridge.contracts.calls import CallPlaced
from bridge.contracts.commands import PlaceCallResult
from bridge.fonestorm.registration import register_callbacks
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import Loop, closed_loop, command
from tests.support.kafka_records import consume_for
from tests.support.sandbox import OURS, TOKEN
from tests.support.servers import metric
from tests.support.topics import kafka_admin
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def by_type(records: list, ce_type: str) -> list[dict]:
    return [
        json.loads(r.value)
        for r in records
        if dict(r.headers).get("ce_type", b"").decode() == ce_type
    ]


@pytest.mark.parametrize("method", ["GET", "POST", "JSON"])
async def test_closed_loop(start_bridge: BridgeFactory, method: str) -> None:
    async with closed_loop(start_bridge, method) as loop:
        cmd = command(str(uuid.uuid4()), correlation_id="corr-1", metadata={"appointment": "a-17"})
        await loop.send(cmd)
        [result] = await loop.results(1)
        PlaceCallResult.model_validate(result)
        assert result["status"] == "placed"
        assert result["attempts"] == 1
        assert result["correlation_id"] == "corr-1"
        assert result["metadata"] == {"appointment": "a-17"}
        call_id = result["call_id"]
        assert loop.calls_per_command() == {cmd.command_id: 1}
        call = loop.sandbox.state.calls[call_id]
        # FoneStorm gets the numbers in E.164, not as the command spelt them.
        assert (call.fonenumber, call.to, call.tts) == ("+13215551081", "+13215551801", "Hello")

        records = await loop.events(3)
        [placed] = by_type(records, "com.fonestorm.call.placed")
        CallPlaced.model_validate(placed)
        assert (placed["call_id"], placed["command_id"]) == (call_id, cmd.command_id)
        # The numbers as dialled, as a reconciled CallPlaced and FoneStorm's callbacks name them.
        assert (placed["fonenumber"], placed["to"]) == (call.fonenumber, call.to)
        callbacks = by_type(records, "com.fonestorm.call.begin") + by_type(
            records, "com.fonestorm.call.end"
        )
        assert [(e["status"], e["call_id"]) for e in callbacks] == [
            ("BEGIN", call_id), ("END", call_id),
        ]  # fmt: skip
        for event in callbacks:
            assert event["command_id"] == cmd.command_id
            assert event["correlation_id"] == "corr-1"
            assert event["direction"] == "OUTBOUND"
        assert callbacks[1]["disposition"] == "ANSWERED"
        assert {r.key for r in records} == {call_id.encode()}


async def test_same_command_twice_places_one_call(start_bridge: BridgeFactory) -> None:
    async with closed_loop(start_bridge) as loop:
        cmd = command(str(uuid.uuid4()))
        await loop.send(cmd, cmd)
        results = await loop.results(2)
        assert sorted(r["status"] for r in results) == ["duplicate", "placed"]
        assert len({r["call_id"] for r in results}) == 1
        assert loop.calls_per_command() == {cmd.command_id: 1}


async def test_command_ids_are_forgotten_after_the_ledger_retention(
    start_bridge: BridgeFactory,
) -> None:
    retention = 2.0
    async with closed_loop(start_bridge, worker={"ledger_retention": retention}) as loop:
        cmd = command(str(uuid.uuid4()))
        await loop.send(cmd)
        assert [r["status"] for r in await loop.results(1)] == ["placed"]
        await asyncio.sleep(retention + 1.5)  # past the retention, and a follower pass
        await loop.send(cmd)
        results = await loop.results(2)
        assert [r["status"] for r in results] == ["placed", "placed"]
        assert len({r["call_id"] for r in results}) == 2
        assert loop.calls_per_command() == {cmd.command_id: 2}


async def test_retriable_faults_are_retried_to_one_call(start_bridge: BridgeFactory) -> None:
    # Opted in to retrying ambiguous answers; the sandbox's 500s and timeouts create nothing.
    async with closed_loop(start_bridge, worker={"retry_ambiguous": True}) as loop:
        loop.sandbox.state.faults = loop.sandbox.state.faults.model_copy(
            update={
                "fail_next": 2, "fail_status": 500, "rate_limit_next": 1, "retry_after": 0.3,
                "timeout_next": 1, "timeout_seconds": 3.0,
            }
        )  # fmt: skip
        cmd = command(str(uuid.uuid4()))
        await loop.send(cmd)
        [result] = await loop.results(1)
        assert result["status"] == "placed"
        assert result["attempts"] == 5
        assert loop.calls_per_command() == {cmd.command_id: 1}
        statuses = [r.status for r in loop.sandbox.state.requests if r.path == "/v2/calls"]
        assert 429 in statuses
        assert statuses.count(500) == 2


async def test_ambiguous_answers_end_in_doubt_when_not_retried(
    start_bridge: BridgeFactory,
) -> None:
    """By default a 500 after the call was created, or a timeout, is not retried."""
    async with closed_loop(start_bridge) as loop:
        state = loop.sandbox.state
        state.faults = state.faults.model_copy(update={"fail_after_create_next": 1})
        created = command(str(uuid.uuid4()))
        await loop.send(created)
        [result] = await loop.results(1)
        assert (result["status"], result["attempts"]) == ("in_doubt", 1)
        assert "server_error" in result["error_message"]
        state.faults = state.faults.model_copy(update={"rate_limit_next": 1, "retry_after": 0.2})
        limited = command(str(uuid.uuid4()))
        await loop.send(limited)
        # A 429 created nothing: retried as ever.
        by_id = {r["command_id"]: r for r in await loop.results(2)}
        assert (by_id[limited.command_id]["status"], by_id[limited.command_id]["attempts"]) == (
            "placed",
            2,
        )
        state.faults = state.faults.model_copy(update={"timeout_next": 1, "timeout_seconds": 3.0})
        timed_out = command(str(uuid.uuid4()))
        await loop.send(timed_out)
        last = {r["command_id"]: r for r in await loop.results(3)}[timed_out.command_id]
        assert (last["status"], last["attempts"]) == ("in_doubt", 1)
        assert "timeout" in last["error_message"]
        state.faults = state.faults.model_copy(update={"break_body_after_create_next": 1})
        broken = command(str(uuid.uuid4()))
        await loop.send(broken)
        last = {r["command_id"]: r for r in await loop.results(4)}[broken.command_id]
        assert (last["status"], last["attempts"]) == ("in_doubt", 1)
        assert "could not be read" in last["error_message"]
        assert loop.calls_per_command() == {
            created.command_id: 1,
            limited.command_id: 1,
            broken.command_id: 1,
        }


async def test_permanent_error_fails_and_dead_letters(start_bridge: BridgeFactory) -> None:
    async with closed_loop(start_bridge) as loop:
        cmd = command(str(uuid.uuid4()), to="3215550009")  # the sandbox answers 422
        await loop.send(cmd)
        [result] = await loop.results(1)
        assert result["status"] == "failed"
        assert result["attempts"] == 1
        assert result["error_code"] == "fonestorm_rejected"
        [letter] = await loop.dead_letters(1)
        assert letter["source"] == "command"
        assert letter["reason_code"] == "fonestorm_rejected"
        assert json.loads(letter["record"]["value"])["command_id"] == cmd.command_id
        assert loop.calls_per_command() == {}


async def test_retries_give_up_after_max_attempts(start_bridge: BridgeFactory) -> None:
    # 429s prove no call was made: after the last attempt the command has certainly failed.
    async with closed_loop(start_bridge, worker={"max_attempts": 3}) as loop:
        loop.sandbox.state.faults = loop.sandbox.state.faults.model_copy(
            update={"rate_limit_next": 10, "retry_after": 0}
        )
        cmd = command(str(uuid.uuid4()))
        await loop.send(cmd)
        [result] = await loop.results(1)
        assert (result["status"], result["attempts"]) == ("failed", 3)
        assert "retries exhausted" in result["error_message"]
        assert len(await loop.dead_letters(1)) == 1


async def test_exhausted_retries_of_5xx_are_in_doubt_not_failed(
    start_bridge: BridgeFactory,
) -> None:
    # A 5xx may come after FoneStorm created the call: "failed" would claim there is none.
    async with closed_loop(
        start_bridge, worker={"max_attempts": 3, "retry_ambiguous": True}
    ) as loop:
        loop.sandbox.state.faults = loop.sandbox.state.faults.model_copy(
            update={"fail_next": 10, "fail_status": 503}
        )
        cmd = command(str(uuid.uuid4()))
        await loop.send(cmd)
        [result] = await loop.results(1)
        assert (result["status"], result["attempts"]) == ("in_doubt", 3)
        assert "retries exhausted" in result["error_message"]


async def test_wrong_token_pauses_worker(start_bridge: BridgeFactory) -> None:
    async with closed_loop(start_bridge, ready=False, fonestorm={"token": "wrong"}) as loop:
        await loop.send(command(str(uuid.uuid4())), command(str(uuid.uuid4())))
        async with aiohttp.ClientSession() as http:

            async def paused() -> bool:
                async with http.get(f"{loop.bridge.url}/readyz") as response:
                    body = await response.json()
                # Not ready for the refused token: a worker not consuming yet is not ready too.
                reason = body.get("reasons", {}).get("worker", "")
                return body["checks"].get("worker") is False and "401" in reason

            await eventually(paused, what="the worker paused by the refused token")
        servers, topics = loop.settings.kafka.bootstrap_servers, loop.settings.topics
        assert await consume_for(servers, topics.place_call_results, seconds=1.0) == []
        assert loop.calls_per_command() == {}
        # Only the command in flight was tried; the backlog was not burned.
        tried = [r for r in loop.sandbox.state.requests if r.path == "/v2/calls"]
        assert 1 <= len(tried) <= 2


async def test_metrics_show_the_backlog_and_the_ledger(start_bridge: BridgeFactory) -> None:
    """/metrics: the unread backlog while FoneStorm refuses the token, and ledger size."""
    async with closed_loop(
        start_bridge, ready=False, fonestorm={"token": "wrong"}, worker={"max_in_flight": 1}
    ) as loop:
        # One slot: IN_HAND_PER_SLOT commands are taken (one probes the token, the others wait
        # for it); the rest wait unread, however many probes go by.
        unread = 4
        await loop.send(*(command(str(uuid.uuid4())) for _ in range(IN_HAND_PER_SLOT + unread)))
        async with aiohttp.ClientSession() as http:
            lag = 0.0
            for _ in range(100):
                lag = await metric(http, loop.bridge.url, "bridge_command_lag")
                if lag == unread:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            assert await metric(http, loop.bridge.url, "bridge_command_lag") == unread
    async with closed_loop(start_bridge) as loop:
        await loop.send(*(command(str(uuid.uuid4())) for _ in range(4)))
        assert len(await loop.results(4)) == 4
        async with aiohttp.ClientSession() as http:
            for _ in range(50):
                lag = await metric(http, loop.bridge.url, "bridge_command_lag")
                if lag == 0:
                    break
                await asyncio.sleep(0.1)
            assert lag == 0
            assert await metric(http, loop.bridge.url, "bridge_ledger_entries") == 4


async def test_expired_command_is_not_placed(start_bridge: BridgeFactory) -> None:
    async with closed_loop(start_bridge) as loop:
        past = datetime.now(UTC) - timedelta(minutes=1)
        cmd = command(str(uuid.uuid4()), not_after=past.isoformat())
        await loop.send(cmd)
        [result] = await loop.results(1)
        assert (result["status"], result["error_code"]) == ("expired", "expired")
        assert loop.calls_per_command() == {}


async def test_invalid_commands_are_rejected_and_dead_lettered(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge) as loop:
        await loop.send(b'{"command_id": "c-bad-1", "to": 5}', key=b"c-bad-1")
        await loop.send(b"{not json", key=b"c-bad-2")
        await loop.send(b"\xff\xfe", key=None)
        results = await loop.results(2)
        assert sorted((r["command_id"], r["status"]) for r in results) == [
            ("c-bad-1", "rejected"), ("c-bad-2", "rejected"),
        ]  # fmt: skip
        letters = await loop.dead_letters(3)
        assert sorted(x["reason_code"] for x in letters) == ["invalid_command"] * 3
        reasons = " ".join(x["reason"] for x in letters)
        assert "fonenumber: Field required" in reasons
        assert "not valid JSON" in reasons
        assert "UTF-8" in reasons
        assert {x["record"]["value_encoding"] for x in letters} == {"utf-8", "base64"}
        assert loop.calls_per_command() == {}
        # The worker goes on with valid commands.
        await loop.send(command("c-good"))
        results = await loop.results(3)
        assert ("c-good", "placed") in {(r["command_id"], r["status"]) for r in results}


async def test_many_commands_over_partitions(start_bridge: BridgeFactory) -> None:
    async with closed_loop(
        start_bridge, worker={"max_in_flight": 32, "rate_limit": 1000},
        callbacks={"correlation_wait": 0}, sandbox={"ring_delay": 5.0},
    ) as loop:  # fmt: skip
        commands = [command(f"bulk-{i}") for i in range(500)]
        await loop.send(*commands)
        results = await loop.results(500, timeout=60)
        assert len(results) == 500
        per_command = {r["command_id"]: r["status"] for r in results}
        assert len(per_command) == 500
        assert set(per_command.values()) == {"placed"}
        assert loop.calls_per_command() == {c.command_id: 1 for c in commands}
        assert await committed_offsets(loop) == 500


async def committed_offsets(loop: Loop) -> int:
    """Sum of the worker group's committed offsets (the topic started empty)."""
    async with kafka_admin(loop.settings.kafka.bootstrap_servers) as admin, asyncio.timeout(10):
        while True:
            offsets = await admin.list_consumer_group_offsets(loop.settings.worker.group_id)
            total = sum(o.offset for o in offsets.values())
            if total >= 500:
                return total
            await asyncio.sleep(0.2)


async def test_callbacks_at_another_replica_carry_the_command(
    start_bridge: BridgeFactory,
) -> None:
    """The worker runs in one bridge; FoneStorm calls back a receiver-only replica."""
    async with closed_loop(start_bridge) as loop:
        other = await start_bridge(topics=loop.settings.topics.model_dump())
        await register_callbacks(
            loop.settings.model_copy(
                update={
                    "fonestorm": loop.settings.fonestorm.model_copy(
                        update={
                            "public_url": other.callback_url,
                            "fonenumbers": [OURS],
                            "token": SecretStr(TOKEN),
                        }
                    )
                }
            )
        )
        cmd = command(str(uuid.uuid4()), correlation_id="corr-replica")
        await loop.send(cmd)
        records = await loop.events(3)
        callbacks = [json.loads(r.value) for r in records if b"status" in r.value]
        assert [c["status"] for c in callbacks] == ["BEGIN", "END"]
        assert {(c["command_id"], c["correlation_id"]) for c in callbacks} == {
            (cmd.command_id, "corr-replica")
        }
        deliveries = loop.sandbox.state.calls[callbacks[0]["call_id"]].deliveries
        assert {d.url for d in deliveries} == {other.callback_url}
