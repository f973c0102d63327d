"""SIGTERM of the real ``fonestorm-bridge serve`` (receiver and worker in one process) while a
callback and a create-call request are both in flight.

The callback's body is withheld and the sandbox holds the request, so neither drain can end
until the test lets it: the worker's drain must begin while the receiver's still waits, rather
than after it (stopping would then take the two drains one after the other, and the worker
would go on taking commands meanwhile). Then both finish with every guarantee of each.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.callbacks import awaiting_body, callback
from tests.support.commands import command, produce_commands
from tests.support.kafka_records import event_ids, read_to_end
from tests.support.ports import free_port
from tests.support.processes import start_command, worker_env, worker_topics
from tests.support.sandbox import running_sandbox
from tests.support.servers import refusing_readiness, wait_ready
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_sigterm_drains_callbacks_and_commands_at_once(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    topics = await worker_topics(new_topic)
    port, admin_port = free_port(), free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    async with running_sandbox() as sandbox:
        # Every timeout far beyond the test's waits: only the test ends either drain.
        env = worker_env(
            kafka_bootstrap, topics, sandbox.url,
            BRIDGE_HTTP__PORT=str(port), BRIDGE_HTTP__ADMIN_PORT=str(admin_port),
            BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED="true",
            BRIDGE_HTTP__BODY_TIMEOUT="120", BRIDGE_HTTP__SHUTDOWN_TIMEOUT="120",
            BRIDGE_FONESTORM__READ_TIMEOUT="60", BRIDGE_WORKER__REBALANCE_TIMEOUT="120",
        )  # fmt: skip
        log_path = tmp_path / "serve.log"
        placed, after = command(f"held-{uuid.uuid4()}"), command(f"after-{uuid.uuid4()}")
        data = callback()
        body = json.dumps(data).encode()
        proc = await start_command("serve", env, log_path)
        try:
            await wait_ready(admin, timeout=60)
            sandbox.state.update_faults({"hold": True})
            await produce_commands(kafka_bootstrap, topics["PLACE_CALL"], placed)
            await eventually(lambda: sandbox.state.held == 1, what="the held request", timeout=60)
            reader, writer = await awaiting_body(port, body)
            proc.send_signal(signal.SIGTERM)
            await eventually(lambda: refusing_readiness(admin), what="the shutdown to begin")
            await produce_commands(kafka_bootstrap, topics["PLACE_CALL"], after)
            # Both drains under way, neither able to end: the callback's body is still here.
            await eventually(
                lambda: "draining 1 in-flight commands" in log_path.read_text(),
                what="the worker's drain while the callbacks drain",
                timeout=60,
            )
            writer.write(body)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            answer = await reader.read()
            writer.close()
            sandbox.state.update_faults({"hold": False})
            code = await asyncio.wait_for(proc.wait(), 120)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        log = log_path.read_text()
        assert code == 0, log
        # The receiver: the callback answered 200, its record on Kafka.
        assert head.startswith(b"HTTP/1.1 200 "), (head, answer, log)
        events = await read_to_end(kafka_bootstrap, topics["CALL_EVENTS"])
        assert json.loads(answer)["event_id"] in event_ids(events)
        # The worker: the request out at SIGTERM finished and its result is published; the
        # command produced after SIGTERM was never taken.
        records = await read_to_end(kafka_bootstrap, topics["PLACE_CALL_RESULTS"])
        results = [json.loads(r.value) for r in records]
        outcomes = [(r["command_id"], r["status"]) for r in results]
        assert outcomes == [(placed.command_id, "placed")], log
        assert [r.path for r in sandbox.state.requests] == ["/v2/calls"], log
        keys = {c.idempotency_key for c in sandbox.state.calls.values()}
        assert keys == {placed.command_id}
