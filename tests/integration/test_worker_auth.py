"""FoneStorm refusing the token: the worker pauses, one command probes, and nothing stalls.

Real Kafka, the sandbox as FoneStorm, the worker in-process. The token is refused with the
sandbox's ``unauthorized`` switch; a 403 comes from a destination ending ``0008``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest

from bridge.commands.service import WORKER
from bridge.sandbox.state import SandboxState
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import closed_loop, command

pytestmark = pytest.mark.integration

WORKER_SETTINGS = {"auth_retry_interval": 0.3, "max_in_flight": 4}


async def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def answers(state: SandboxState, command_id: str) -> list[int]:
    """The statuses FoneStorm answered this command's create-call requests with."""
    return [
        r.status
        for r in state.requests
        if r.path == "/v2/calls" and r.idempotency_key == command_id
    ]


async def test_a_403_fails_its_own_command_and_stops_no_other(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge, worker=WORKER_SETTINGS) as loop:
        state = loop.sandbox.state
        forbidden = command(f"forbidden-{uuid.uuid4()}", to="3215550008")
        await loop.send(forbidden)
        await eventually(lambda: 403 in answers(state, forbidden.command_id), "the 403")
        others = [command(f"other-{n}-{uuid.uuid4()}") for n in range(3)]
        await loop.send(*others)
        results = {r["command_id"]: r for r in await loop.results(4)}
        assert {k: r["status"] for k, r in results.items()} == {forbidden.command_id: "failed"} | {
            c.command_id: "placed" for c in others
        }
        assert results[forbidden.command_id]["error_code"] == "fonestorm_forbidden"
        assert answers(state, forbidden.command_id) == [403]  # final: not retried
        [letter] = await loop.dead_letters(1)
        assert letter["reason_code"] == "fonestorm_forbidden"
        assert loop.calls_per_command() == {c.command_id: 1 for c in others}
        assert loop.bridge.app[WORKER].ready
