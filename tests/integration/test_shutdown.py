"""SIGTERM of the real ``receiver`` process: under load it loses no acknowledged callback, and
a callback in flight when it comes (its body still on the way) finishes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.support.callbacks import awaiting_body, callback
from tests.support.kafka_records import consume_all
from tests.support.ports import free_port
from tests.support.processes import receiver_process
from tests.support.servers import refusing_readiness, wait_ready
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_sigterm_during_load_keeps_every_acknowledged_callback(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    events, dlq = await new_topic("events"), await new_topic("dlq")
    port = free_port()
    env = {
        **os.environ,
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BRIDGE_TOPICS__CALL_EVENTS": events,
        "BRIDGE_TOPICS__DEAD_LETTERS": dlq,
        "BRIDGE_HTTP__HOST": "127.0.0.1",
        "BRIDGE_HTTP__PORT": str(port),
        "BRIDGE_HTTP__SHUTDOWN_TIMEOUT": "10",
        "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED": "true",
    }
    log_path = tmp_path / "receiver.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge.cli", "receiver", env=env, stdout=log_file,
            stderr=log_file,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    acknowledged: list[str] = []
    refused = 0
    stop = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal refused
        while not stop.is_set():
            data = callback()
            try:
                async with session.post(f"{url}/callbacks/calls", json=data) as response:
                    if response.status == 200:
                        acknowledged.append((await response.json())["event_id"])
                    else:
                        refused += 1
            except aiohttp.ClientError:
                refused += 1
                await asyncio.sleep(0.01)

    try:
        await wait_ready(url, timeout=60)
        async with aiohttp.ClientSession() as session:
            clients = [asyncio.create_task(client(session)) for _ in range(20)]
            await asyncio.sleep(1.5)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), timeout=30)
            stop.set()
            await asyncio.gather(*clients)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, log_path.read_text()
    assert len(acknowledged) > 50, "the load never got going"
    records = await consume_all(kafka_bootstrap, events, expected=len(acknowledged), timeout=30)
    in_kafka = {json.loads(r.value)["event_id"] for r in records}
    missing = set(acknowledged) - in_kafka
    assert not missing, f"{len(missing)} acknowledged callbacks are not in Kafka"


async def test_sigterm_lets_a_callback_whose_body_is_on_its_way_finish(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    """A callback whose headers came before SIGTERM and whose body comes after: 200, on Kafka."""
    events, dlq = await new_topic("events"), await new_topic("dlq")
    admin_port = free_port()
    env = {
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BRIDGE_TOPICS__CALL_EVENTS": events,
        "BRIDGE_TOPICS__DEAD_LETTERS": dlq,
        "BRIDGE_HTTP__BODY_TIMEOUT": "30",
        "BRIDGE_HTTP__SHUTDOWN_TIMEOUT": "60",
    }
    log_path = tmp_path / "receiver.log"
    # Operations on a port of their own, served until the very end: it shows when the shutdown
    # has begun.
    admin = f"http://127.0.0.1:{admin_port}"
    data = callback()
    body = json.dumps(data).encode()
    async with receiver_process(env, log_path, admin_port=admin_port) as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await awaiting_body(port, body)
        proc.send_signal(signal.SIGTERM)
        await eventually(lambda: refusing_readiness(admin), what="the shutdown to begin")
        writer.write(body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        answer = await reader.read()
        writer.close()
        code = await asyncio.wait_for(proc.wait(), timeout=90)
    assert head.startswith(b"HTTP/1.1 200 "), (head, answer, log_path.read_text())
    assert code == 0, log_path.read_text()
    [record] = await consume_all(kafka_bootstrap, events, expected=1, timeout=30)
    event = json.loads(record.value)
    assert event["event_id"] == json.loads(answer)["event_id"]
    assert event["call_id"] == data["uid"]
