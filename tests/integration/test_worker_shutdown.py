"""SIGTERM of the real ``fonestorm-bridge worker`` while a create-call request is out.

The sandbox holds the request, so the signal arrives at a known point: the request is out and
unanswered. The worker waits for the answer, records it and exits; what it must not do is send
another request after the signal.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from bridge.contracts.commands import PlaceCallCommand
from tests.integration.test_worker_crash import produce
from tests.support.commands import command
from tests.support.kafka_records import consume_all, consume_for
from tests.support.processes import start_worker, worker_env, worker_process, worker_topics
from tests.support.sandbox import Sandbox, running_sandbox
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@asynccontextmanager
async def sigterm_while_held(
    sandbox: Sandbox, env: dict[str, str], log_path: Path, cmd: PlaceCallCommand
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real worker whose create-call request for ``cmd`` the sandbox holds, SIGTERMed and
    draining; killed on the way out if still running."""
    sandbox.state.update_faults({"hold": True})
    proc = await start_worker(env, log_path)
    try:
        await produce(env["BRIDGE_KAFKA__BOOTSTRAP_SERVERS"], env["BRIDGE_TOPICS__PLACE_CALL"], cmd)
        await eventually(lambda: sandbox.state.held == 1, what="the held request", timeout=60)
        proc.send_signal(signal.SIGTERM)
        await eventually(
            lambda: "draining 1 in-flight commands" in log_path.read_text(), what="the drain"
        )
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("answer", ["placed", "rate-limited"])
async def test_sigterm_with_a_request_out_waits_for_it_and_sends_no_other(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], tmp_path: Path, answer: str
) -> None:
    topics = await worker_topics(new_topic)
    async with running_sandbox() as sandbox:
        env = worker_env(
            kafka_bootstrap, topics, sandbox.url,
            BRIDGE_FONESTORM__READ_TIMEOUT="20", BRIDGE_HTTP__SHUTDOWN_TIMEOUT="30",
        )  # fmt: skip
        log_path = tmp_path / "worker.log"
        cmd = command(f"sigterm-{uuid.uuid4()}")
        async with sigterm_while_held(sandbox, env, log_path, cmd) as proc:
            if answer == "rate-limited":
                # FoneStorm refuses it (no call made) and would take another in a second.
                sandbox.state.update_faults({"rate_limit_next": 1, "retry_after": 1})
            sandbox.state.update_faults({"hold": False})
            code = await asyncio.wait_for(proc.wait(), 120)
        assert code == 0, log_path.read_text()
        # The request out at SIGTERM, and none after it.
        assert [r.path for r in sandbox.state.requests] == ["/v2/calls"], log_path.read_text()
        ledger = await consume_for(kafka_bootstrap, topics["COMMAND_LEDGER"], seconds=1)
        states = [json.loads(r.value)["state"] for r in ledger]
        committed = await committed_offset(
            kafka_bootstrap, env["BRIDGE_WORKER__GROUP_ID"], topics["PLACE_CALL"]
        )
        if answer == "placed":
            assert states == ["placing", "done"]
            assert committed == 1, "the finished command's offset was not committed"
            [result] = await consume_all(kafka_bootstrap, topics["PLACE_CALL_RESULTS"], expected=1)
            assert json.loads(result.value)["status"] == "placed"
        else:
            # Refused, so no call exists: left to the next owner to place.
            assert states == ["placing", "pending"]
            assert committed is None
        # The next owner (same group) finds the offset committed, or the command pending.
        async with worker_process(env, log_path):
            records = await consume_all(
                kafka_bootstrap, topics["PLACE_CALL_RESULTS"], expected=1, timeout=60
            )
            await asyncio.sleep(1.0)  # time for a wrong second call or result to show up
        results = [json.loads(r.value) for r in records]
        assert [(r["command_id"], r["status"]) for r in results] == [(cmd.command_id, "placed")]
        later = await consume_for(kafka_bootstrap, topics["PLACE_CALL_RESULTS"], seconds=0.5)
        assert len(later) == 1
        calls = [c for c in sandbox.state.calls.values() if c.idempotency_key == cmd.command_id]
        assert len(calls) == 1


async def committed_offset(bootstrap: str, group: str, topic: str) -> int | None:
    """The offset ``group`` committed on partition 0 of ``topic`` (None: none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        committed: int | None = await consumer.committed(TopicPartition(topic, 0))
        return committed
    finally:
        await consumer.stop()


async def test_a_request_out_at_sigterm_gets_as_long_as_a_rebalance_gives_it(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    # The answer comes after the shutdown timeout (2 s) but within the revoke budget (80% of
    # 15 s): cut at the shutdown timeout, the call we know would end in_doubt.
    topics = await worker_topics(new_topic)
    async with running_sandbox() as sandbox:
        env = worker_env(
            kafka_bootstrap, topics, sandbox.url,
            BRIDGE_FONESTORM__READ_TIMEOUT="8", BRIDGE_KAFKA__PRODUCE_TIMEOUT="2",
            BRIDGE_WORKER__REBALANCE_TIMEOUT="15", BRIDGE_HTTP__SHUTDOWN_TIMEOUT="2",
        )  # fmt: skip
        log_path = tmp_path / "worker.log"
        cmd = command(f"slow-{uuid.uuid4()}")
        async with sigterm_while_held(sandbox, env, log_path, cmd) as proc:
            await asyncio.sleep(4)  # past the shutdown timeout
            sandbox.state.update_faults({"hold": False})
            code = await asyncio.wait_for(proc.wait(), 60)
        assert code == 0, log_path.read_text()
        [result] = await consume_all(kafka_bootstrap, topics["PLACE_CALL_RESULTS"], expected=1)
        assert json.loads(result.value)["status"] == "placed", log_path.read_text()
