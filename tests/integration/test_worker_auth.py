"""FoneStorm refusing the token: the worker pauses, one command probes, and nothing stalls.

Real Kafka, the sandbox as FoneStorm, the worker in-process. The token is refused with the
sandbox's ``unauthorized`` switch; a 403 comes from a destination ending ``0008``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bridge.app import WORKER
from bridge.sandbox.state import SandboxState
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import Loop, closed_loop, command
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

WORKER_SETTINGS = {"auth_retry_interval": 0.3, "max_in_flight": 4}
#: Time the first command has to reach FoneStorm once before it expires.
EXPIRES_IN = 4.0


def answers(state: SandboxState, command_id: str) -> list[int]:
    """The statuses FoneStorm answered this command's create-call requests with."""
    return [
        r.status
        for r in state.requests
        if r.path == "/v2/calls" and r.idempotency_key == command_id
    ]


def refused(state: SandboxState) -> set[str | None]:
    """The commands whose create-call got a 401."""
    return {r.idempotency_key for r in state.requests if r.path == "/v2/calls" and r.status == 401}


async def readiness(loop: Loop) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{loop.bridge.url}/readyz") as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


async def test_auth_gate_stall_a_probe_that_expires_hands_the_probe_on(
    start_bridge: BridgeFactory,
) -> None:
    """The only command probing expires while the token is refused: a later one probes."""
    async with closed_loop(start_bridge, worker=WORKER_SETTINGS) as loop:
        state = loop.sandbox.state
        state.update_faults({"unauthorized": True})
        soon = datetime.now(UTC) + timedelta(seconds=EXPIRES_IN)
        first = command(f"first-{uuid.uuid4()}", not_after=soon.isoformat())
        await loop.send(first)
        [expired] = await loop.results(1)
        assert expired["status"] == "expired"
        assert 401 in answers(state, first.command_id), "expired before it reached FoneStorm"

        # Nothing in hand, the gate closed: the worker must take a command to probe with.
        later = [command(f"later-{n}-{uuid.uuid4()}") for n in range(3)]
        await loop.send(*later)
        await eventually(lambda: len(refused(state)) == 2, "a later command to probe")
        body = await readiness(loop)
        assert body["checks"]["worker"] is False
        assert "401" in body["reasons"]["worker"]
        await asyncio.sleep(1.0)  # probes go by: still one command at a time, not the backlog
        assert len(refused(state)) == 2

        state.update_faults({"unauthorized": False})
        results = {r["command_id"]: r["status"] for r in await loop.results(4)}
        assert results == {first.command_id: "expired"} | {c.command_id: "placed" for c in later}
        assert loop.calls_per_command() == {c.command_id: 1 for c in later}
        assert loop.bridge.app[WORKER].ready


async def test_auth_gate_reopens_when_the_probe_gets_a_final_4xx(
    start_bridge: BridgeFactory,
) -> None:
    """A 422 to the probe proves the token is accepted again: the next command is placed."""
    async with closed_loop(start_bridge, worker=WORKER_SETTINGS) as loop:
        state = loop.sandbox.state
        state.update_faults({"unauthorized": True})
        invalid = command(f"invalid-{uuid.uuid4()}", to="3215550009")  # 422 once accepted
        await loop.send(invalid)
        await eventually(lambda: 401 in answers(state, invalid.command_id), "the first 401")
        state.update_faults({"unauthorized": False})
        [failed] = await loop.results(1)
        assert (failed["status"], failed["error_code"]) == ("failed", "fonestorm_rejected")

        later = command(f"later-{uuid.uuid4()}")
        await loop.send(later)
        results = {r["command_id"]: r["status"] for r in await loop.results(2)}
        assert results == {invalid.command_id: "failed", later.command_id: "placed"}
        assert loop.calls_per_command() == {later.command_id: 1}
        assert loop.bridge.app[WORKER].ready


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
