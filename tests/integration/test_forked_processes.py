"""``fonestorm-bridge receiver --workers N``: the parent stops its processes as one process stops.

The real console script, its processes forked as in production. The moment between two forks
is forced from inside the parent: a Python audit hook sees each ``os.fork`` before it happens
and sends the parent its SIGTERM just before the second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.pid_namespace import console_script
from tests.support.ports import free_port
from tests.support.servers import wait_ready
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

#: Seconds the parent gets to exit once it should: only turns a parent that would wait forever
#: into a failure.
EXIT_WAIT = 60.0

#: Run before the console script: SIGTERM to the parent itself as it is about to fork the
#: second process, that is, after the first fork and before the second.
SIGTERM_AT_SECOND_FORK = """\
import os, signal, sys
forks = 0
def _hook(event, args):
    global forks
    if event == "os.fork":
        forks += 1
        if forks == 2:
            os.kill(os.getpid(), signal.SIGTERM)
sys.addaudithook(_hook)
"""


async def _receiver_env(
    new_topic: Callable[..., Awaitable[str]], kafka_bootstrap: str
) -> dict[str, str]:
    return {
        **os.environ,
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BRIDGE_TOPICS__CALL_EVENTS": await new_topic("events"),
        "BRIDGE_TOPICS__DEAD_LETTERS": await new_topic("dlq"),
        "BRIDGE_HTTP__HOST": "127.0.0.1",
        "BRIDGE_HTTP__PORT": str(free_port()),
        "BRIDGE_HTTP__SHUTDOWN_TIMEOUT": "5",
        "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED": "true",
        "BRIDGE_LOG__FORMAT": "json",
    }


async def _start(
    env: dict[str, str], log_path: Path, workers: int, *, before: str = ""
) -> asyncio.subprocess.Process:
    python, flag, code = console_script()
    assert flag == "-c"
    with log_path.open("ab") as log_file:
        return await asyncio.create_subprocess_exec(
            python, flag, before + code, "receiver", "--workers", str(workers),
            env=env, stdout=log_file, stderr=log_file,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def _two_serving(
    new_topic: Callable[..., Awaitable[str]],
    kafka_bootstrap: str,
    log_path: Path,
    ready: Callable[[str], bool],
    what: str,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``receiver --workers 2`` serving and ``ready(log)``; killed, with its processes, after."""
    env = await _receiver_env(new_topic, kafka_bootstrap)
    proc = await _start(env, log_path, 2)
    try:
        await wait_ready(f"http://127.0.0.1:{env['BRIDGE_HTTP__PORT']}", timeout=EXIT_WAIT)
        await eventually(lambda: ready(log_path.read_text()), what=what, timeout=EXIT_WAIT)
        yield proc
    finally:
        await _kill(proc)


async def _exit_code(proc: asyncio.subprocess.Process, log_path: Path, what: str) -> int:
    try:
        return await asyncio.wait_for(proc.wait(), EXIT_WAIT)
    except TimeoutError:
        await _kill(proc)
        pytest.fail(f"parent still running {EXIT_WAIT:g}s after {what}:\n{_read(log_path)}")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the parent, if it still runs, and its processes first (they would outlive it)."""
    if proc.returncode is not None:
        return
    for child in _children(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    proc.kill()
    await proc.wait()


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in _read(Path(f"/proc/{pid}/task/{pid}/children")).split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _read(path: Path) -> str:
    return path.read_text()


def _started_pids(log: str) -> list[int] | None:
    found = re.search(r"started \d+ processes \[([\d, ]+)\]", log)
    return None if found is None else [int(pid) for pid in found.group(1).split(",")]


async def test_sigterm_between_forks_stops_those_started_and_forks_no_more(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    env = await _receiver_env(new_topic, kafka_bootstrap)
    log_path = tmp_path / "receiver.log"
    proc = await _start(env, log_path, 3, before=SIGTERM_AT_SECOND_FORK)
    try:
        code = await _exit_code(proc, log_path, "its SIGTERM")
    finally:
        await _kill(proc)
    log = log_path.read_text()
    assert "Traceback" not in log, log
    # As a single process whose start-up a SIGTERM cut short: it had started something.
    assert code == 0, log
    assert "SIGTERM while starting processes: 2 of 3 started, stopping them" in log, log
    stopped = re.findall(r"process (\d) \(pid \d+\) stopped", log)
    assert sorted(stopped) == ["1", "2"], log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_to_the_parent_stops_every_process(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    tmp_path: Path,
    signum: signal.Signals,
) -> None:
    log_path = tmp_path / "receiver.log"
    async with _two_serving(
        new_topic,
        kafka_bootstrap,
        log_path,
        lambda log: log.count("listening on") == 2,
        "both processes serving",
    ) as proc:
        proc.send_signal(signum)  # to the parent alone, as `kill` or a container runtime does
        code = await _exit_code(proc, log_path, signum.name)
    log = log_path.read_text()
    assert "Traceback" not in log, log
    assert code == 0, log
    # Each process's own last line after a graceful stop.
    assert log.count('"message": "stopped"') == 2, log


async def test_a_process_that_dies_stops_the_others_and_the_parent_fails(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    log_path = tmp_path / "receiver.log"
    async with _two_serving(
        new_topic,
        kafka_bootstrap,
        log_path,
        lambda log: _started_pids(log) is not None,
        "the parent's list of processes",
    ) as proc:
        pids = _started_pids(log_path.read_text())
        assert pids is not None
        first, second = pids
        os.kill(second, signal.SIGKILL)
        code = await _exit_code(proc, log_path, "a process was killed")
    log = log_path.read_text()
    assert code == 1, log
    assert f"process 2 (pid {second}) was killed by SIGKILL: stopping the other 1" in log, log
    assert f"process 1 (pid {first}) stopped" in log, log
