"""The bridge's receiver and worker as real subprocesses (``python -m bridge.cli ...``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support.ports import free_port
from tests.support.sandbox import OURS, TOKEN
from tests.support.servers import wait_ready


async def worker_topics(
    new_topic: Callable[..., Awaitable[str]], *, command_partitions: int = 1
) -> dict[str, str]:
    """Fresh topics for a worker, by the name of their ``BRIDGE_TOPICS__`` setting."""
    return {
        "PLACE_CALL": await new_topic("commands", partitions=command_partitions),
        "PLACE_CALL_RESULTS": await new_topic("results"),
        "COMMAND_LEDGER": await new_topic("ledger"),
        "CALL_EVENTS": await new_topic("events"),
        "DEAD_LETTERS": await new_topic("dlq"),
    }


def worker_env(
    bootstrap: str,
    topics: dict[str, str],
    fonestorm_url: str,
    *,
    token: str = TOKEN,
    group: str | None = None,
    **settings: str,
) -> dict[str, str]:
    """The environment of a worker subprocess on ``topics`` (:func:`worker_topics`), calling
    the FoneStorm (a sandbox) at ``fonestorm_url`` from our FoneNumber, in a group of its own
    unless ``group`` is given; ``settings`` (``BRIDGE_...`` variables) on top."""
    return (
        {f"BRIDGE_TOPICS__{k}": v for k, v in topics.items()}
        | {
            "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "BRIDGE_FONESTORM__BASE_URL": f"{fonestorm_url}/v2",
            "BRIDGE_FONESTORM__TOKEN": token,
            "BRIDGE_FONESTORM__FONENUMBERS": f'["{OURS}"]',
            "BRIDGE_WORKER__GROUP_ID": group or f"g-{uuid.uuid4()}",
            "BRIDGE_HTTP__HOST": "127.0.0.1",
        }
        | settings
    )


@asynccontextmanager
async def receiver_process(
    env: dict[str, str],
    log_path: Path,
    *,
    ready_timeout: float = 60.0,
    admin_port: int | None = None,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A real ``python -m bridge.cli receiver`` on a free port of 127.0.0.1, until ready (its
    operations endpoints on ``admin_port`` when given)."""
    port = free_port()
    full_env = {
        **os.environ,
        "BRIDGE_HTTP__HOST": "127.0.0.1",
        "BRIDGE_HTTP__PORT": str(port),
        "BRIDGE_HTTP__SHUTDOWN_TIMEOUT": "3",
        "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED": "true",
        **({} if admin_port is None else {"BRIDGE_HTTP__ADMIN_PORT": str(admin_port)}),
        **env,
    }
    with log_path.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge.cli", "receiver",
            env=full_env, stdout=log_file, stderr=log_file,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(
            url if admin_port is None else f"http://127.0.0.1:{admin_port}", timeout=ready_timeout
        )
        yield proc, url
    finally:
        await stop(proc, grace=15)


async def stop(proc: asyncio.subprocess.Process, *, grace: float) -> None:
    """SIGTERM ``proc`` unless it has exited; SIGKILL if it still runs ``grace`` seconds on."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def stop_sync(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    """:func:`stop` for a process started with :mod:`subprocess`."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def start_worker(env: dict[str, str], log_path: Path) -> asyncio.subprocess.Process:
    """A real ``python -m bridge.cli worker`` (its HTTP server on a free port), output appended
    to ``log_path``; the caller stops it."""
    return await start_command("worker", {**env, "BRIDGE_HTTP__PORT": str(free_port())}, log_path)


async def start_command(
    command: str, env: dict[str, str], log_path: Path
) -> asyncio.subprocess.Process:
    """A real ``python -m bridge.cli COMMAND`` with ``env`` over the test's environment, output
    appended to ``log_path``; the caller stops it."""
    with log_path.open("ab") as log_file:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge.cli", command,
            env={**os.environ, **env}, stdout=log_file, stderr=log_file,
        )  # fmt: skip


@asynccontextmanager
async def worker_process(
    env: dict[str, str], log_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """:func:`start_worker`, SIGKILLed on the way out if still running."""
    proc = await start_worker(env, log_path)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
