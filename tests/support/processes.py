"""Helpers shared by the fault tests: callback bodies, real receiver processes, small stats."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.conftest import wait_ready

CALLBACK_PATH = "/callbacks/calls"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def callback(direction: str = "INBOUND", status: str = "BEGIN", **extra: Any) -> dict[str, Any]:
    """A valid callback as FoneStorm's JSON method sends it, with a fresh call id."""
    data: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "account_code": "ACC1",
        "direction": direction,
        "status": status,
        "from": "3215551081",
        "to": "3215551801",
        "type": "VOICE",
    }
    if status == "END":
        data |= {"disposition": "ANSWERED", "billable_seconds": 30}
    return data | extra


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def event_ids(records: list[Any]) -> set[str]:
    """``event_id`` of every CallEvent record."""
    return {json.loads(r.value)["event_id"] for r in records}


@asynccontextmanager
async def receiver_process(
    env: dict[str, str], log_path: Path, *, ready_timeout: float = 60.0
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A real ``python -m bridge.cli receiver`` on a free port of 127.0.0.1, until ready."""
    port = free_port()
    full_env = {
        **os.environ,
        "BRIDGE_HTTP__HOST": "127.0.0.1",
        "BRIDGE_HTTP__PORT": str(port),
        "BRIDGE_HTTP__SHUTDOWN_TIMEOUT": "3",
        **env,
    }
    with log_path.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge.cli", "receiver",
            env=full_env, stdout=log_file, stderr=log_file,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, timeout=ready_timeout)
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def post_json(
    session: aiohttp.ClientSession, url: str, data: dict[str, Any]
) -> tuple[int, dict[str, Any] | None]:
    """POST a callback; the status and the JSON answer (None when not JSON)."""
    async with session.post(url + CALLBACK_PATH, json=data) as response:
        try:
            body = await response.json()
        except (aiohttp.ContentTypeError, ValueError):
            body = None
        return response.status, body


async def consume_until_distinct(
    bootstrap: str, topic: str, key: Any, expected: int, *, timeout: float
) -> list[Any]:
    """Read ``topic`` from the start until ``expected`` distinct ``key(record)`` or ``timeout``.

    Unlike a record count, a distinct count is not fooled by records published twice.
    """
    from tests.kafka_helpers import _consumer  # noqa: PLC0415 - the shared read_committed setup

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    consumer = _consumer(bootstrap, topic)
    await consumer.start()
    records: list[Any] = []
    seen: set[Any] = set()
    try:
        while len(seen) < expected and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                for record in batch:
                    records.append(record)
                    seen.add(key(record))
        return records
    finally:
        await consumer.stop()


async def read_to_end(bootstrap: str, topic: str, *, timeout: float = 60.0) -> list[Any]:
    """Every record of ``topic`` up to its end offsets as of now (an exact count: no early stop
    like a record-count wait, no partial read like a fixed time window)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        async with asyncio.timeout(timeout):
            while True:
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)):
                    return records
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
