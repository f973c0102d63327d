"""SIGKILL of the real ``fonestorm-bridge worker`` process mid-command never rings twice."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from bridge.contracts.commands import PlaceCallCommand
from tests.support.commands import command
from tests.support.kafka_records import consume_all, consume_for
from tests.support.processes import worker_env, worker_process, worker_topics
from tests.support.sandbox import Sandbox, running_sandbox
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("moment", ["during-request", "after-response"])
async def test_sigkill_between_call_and_commit_places_one_call(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], tmp_path: Path, moment: str
) -> None:
    topics = await worker_topics(new_topic)
    async with running_sandbox() as sandbox:
        env = worker_env(kafka_bootstrap, topics, sandbox.url, BRIDGE_FONESTORM__READ_TIMEOUT="5")
        log_path = tmp_path / "worker.log"
        cmd = command(str(uuid.uuid4()))
        if moment == "during-request":
            # The request is out, unanswered, when the worker dies: the sandbox holds it.
            sandbox.state.update_faults({"hold": True})
        async with worker_process(env, log_path) as first:
            await produce(kafka_bootstrap, topics["PLACE_CALL"], cmd)
            if moment == "during-request":
                await eventually(lambda: sandbox.state.held == 1, what="the request", timeout=30)
            else:
                await wait_for_call(sandbox)
            first.send_signal(signal.SIGKILL)
            await first.wait()
        # During the request, FoneStorm goes on and creates the call although we died.
        sandbox.state.update_faults({"hold": False})
        await wait_for_call(sandbox)
        async with worker_process(env, log_path):
            records = await consume_all(
                kafka_bootstrap, topics["PLACE_CALL_RESULTS"], expected=1, timeout=40
            )
            assert records, log_path.read_text()
            await asyncio.sleep(1.0)  # time for a wrong second call to show up
        results = [json.loads(r.value) for r in records]
        assert {r["command_id"] for r in results} == {cmd.command_id}
        statuses = {r["status"] for r in results}
        if moment == "during-request":
            assert statuses == {"in_doubt"}
        else:
            assert statuses <= {"placed", "in_doubt"}
        calls = [c for c in sandbox.state.calls.values() if c.idempotency_key == cmd.command_id]
        assert len(calls) == 1
        later = await consume_for(kafka_bootstrap, topics["PLACE_CALL_RESULTS"], seconds=0.5)
        assert len(later) == len(records)


async def wait_for_call(sandbox: Sandbox) -> None:
    async with asyncio.timeout(30):
        while not sandbox.state.calls:
            await asyncio.sleep(0.01)


async def produce(bootstrap: str, topic: str, cmd: PlaceCallCommand) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, cmd.model_dump_json().encode(), key=cmd.command_id.encode()
        )
    finally:
        await producer.stop()
