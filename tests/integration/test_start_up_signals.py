"""SIGTERM or SIGINT at any moment of start-up stops the bridge, run as a container runs it.

The console script runs as PID 1 of a PID namespace of its own, with no init in front of it:
the kernel then discards any signal that has no handler yet. The moments are named by what the
process has reached, seen in its ``/proc`` entries, not by how long it has run: as soon as it
can catch a signal at all; in the imports (the longest part); a moment later; once ready. Before
its event loop runs it leaves at once with the shell's status for the signal, having started
nothing; from then on it stops as SIGTERM stops it at any time (status 0).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.pid_namespace import Pid1, as_pid1, console_script, unavailable
from tests.support.ports import free_port
from tests.support.processes import worker_env, worker_topics
from tests.support.sandbox import Sandbox
from tests.support.servers import serve, wait_ready
from tests.support.waiting import eventually

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(unavailable() is not None, reason=f"no PID namespace: {unavailable()}"),
]

#: Seconds a process gets to exit after the signal: only turns a process that ignored it into
#: a failure (it would run until killed).
EXIT_WAIT = 60.0


async def _first_catchable(pid1: Pid1, url: str) -> None:
    # The first moment a PID 1 can honour a signal: its handler is in place (SIGINT's is
    # installed before SIGTERM's), or failing that once its imports are under way.
    await eventually(
        lambda: pid1.catches(signal.SIGTERM) or pid1.imports_packages(),
        what="a handler or the imports",
        timeout=EXIT_WAIT,
    )


async def _in_the_imports(pid1: Pid1, url: str) -> None:
    await eventually(pid1.imports_packages, what="the imports", timeout=EXIT_WAIT)


async def _a_moment_later(pid1: Pid1, url: str) -> None:
    await asyncio.sleep(0.3)
    # Never before the interpreter itself has started: no PID 1 can catch anything then.
    await eventually(lambda: pid1.catches(signal.SIGTERM), what="a handler", timeout=EXIT_WAIT)


async def _ready(pid1: Pid1, url: str) -> None:
    await wait_ready(url, timeout=EXIT_WAIT)


MOMENTS: dict[str, Callable[[Pid1, str], Awaitable[None]]] = {
    "first-catchable": _first_catchable,
    "in-the-imports": _in_the_imports,
    "a-moment-later": _a_moment_later,
    "ready": _ready,
}


@pytest.mark.parametrize(
    ("command", "moment", "signum"),
    [
        ("receiver", "first-catchable", signal.SIGTERM),
        ("receiver", "first-catchable", signal.SIGINT),
        ("worker", "first-catchable", signal.SIGTERM),
        ("serve", "first-catchable", signal.SIGTERM),
        ("receiver", "in-the-imports", signal.SIGTERM),
        ("receiver", "a-moment-later", signal.SIGTERM),
        ("receiver", "ready", signal.SIGTERM),
        ("worker", "ready", signal.SIGTERM),
        ("serve", "ready", signal.SIGTERM),
    ],
)
async def test_a_stop_signal_at_any_moment_of_start_up_stops_pid_1(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    sandbox: Sandbox,
    tmp_path: Path,
    command: str,
    moment: str,
    signum: signal.Signals,
) -> None:
    port = free_port()
    env = worker_env(
        kafka_bootstrap, await worker_topics(new_topic), sandbox.url,
        BRIDGE_HTTP__PORT=str(port), BRIDGE_HTTP__SHUTDOWN_TIMEOUT="5",
        BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED="true",
    )  # fmt: skip
    log_path = tmp_path / f"{command}.log"
    async with as_pid1([*console_script(), command], env, log_path) as pid1:
        await MOMENTS[moment](pid1, f"http://127.0.0.1:{port}")
        pid1.send(signum)
        try:
            code = await asyncio.wait_for(pid1.wait(), EXIT_WAIT)
        except TimeoutError:
            pytest.fail(
                f"still running {EXIT_WAIT:g}s after {signum.name}:\n{log_path.read_text()}"
            )
    log = log_path.read_text()
    assert "Traceback" not in log, log
    if moment == "ready":
        assert code == 0, log
    elif moment != "a-moment-later":
        assert code == 128 + signum, log
    assert code in (0, 128 + signum), log
    if code != 0:
        assert f"{signum.name} before start-up: not starting" in log, log
        assert "listening on" not in log, "started something before it exited"


async def test_a_stop_signal_while_start_up_waits_for_the_registry_cancels_it(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    tmp_path: Path,
) -> None:
    # Registry mode registers every schema before anything else starts; this registry holds
    # every request, so the start-up is stuck there when the signal comes.
    asked = asyncio.Event()
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        asked.set()
        await release.wait()
        return web.Response(status=503)

    registry = web.Application()
    registry.router.add_route("*", "/{tail:.*}", hold)
    runner, registry_url = await serve(registry, shutdown_timeout=1)
    try:
        env = {
            "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "BRIDGE_TOPICS__CALL_EVENTS": await new_topic("events"),
            "BRIDGE_TOPICS__DEAD_LETTERS": await new_topic("dlq"),
            "BRIDGE_HTTP__HOST": "127.0.0.1",
            "BRIDGE_HTTP__PORT": str(free_port()),
            "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED": "true",
            "BRIDGE_SCHEMAS__REGISTRY_URL": registry_url,
            # Far beyond the test: only the signal can end this start-up.
            "BRIDGE_SCHEMAS__REQUEST_TIMEOUT": "600",
            "BRIDGE_SCHEMAS__START_TIMEOUT": "600",
        }
        log_path = tmp_path / "receiver.log"
        async with as_pid1([*console_script(), "receiver"], env, log_path) as pid1:
            await asyncio.wait_for(asked.wait(), EXIT_WAIT)
            pid1.send(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(pid1.wait(), EXIT_WAIT)
            except TimeoutError:
                pytest.fail(f"still starting {EXIT_WAIT:g}s after SIGTERM:\n{log_path.read_text()}")
    finally:
        release.set()
        await runner.cleanup()
    log = log_path.read_text()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert "stop signal during start-up" in log, log
    assert "listening on" in log  # the event loop ran: this was the graceful path
