"""``not_after`` is checked right before each create-call request leaves, not only before the
ledger write: the wait for a request slot can outlast it.

Real Kafka, the sandbox as FoneStorm, the worker in-process; the sandbox's ``hold`` fault keeps
the one request slot busy while the next command waits for it with ``placing`` written.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.bridge_app import BridgeFactory
from tests.support.commands import PATIENT, Loop, closed_loop, command, placing_now
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_a_command_that_expires_waiting_for_a_request_slot_is_not_sent(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge, fonestorm=PATIENT, worker={"max_in_flight": 1}) as loop:
        state = loop.sandbox.state
        state.update_faults({"hold": True})
        held = command(f"held-{uuid.uuid4()}")
        await loop.send(held)
        await eventually(lambda: state.held == 1, what="the held request")
        not_after = datetime.now(UTC) + timedelta(seconds=2)
        late = command(f"late-{uuid.uuid4()}", not_after=not_after.isoformat())
        await loop.send(late)
        # Its placing is written (not_after was still ahead then); it waits for the slot.
        await eventually(lambda: _placing(loop, late.command_id), what="the late command's placing")
        while datetime.now(UTC) <= not_after:
            await asyncio.sleep(0.1)
        state.update_faults({"hold": False})
        by_id = {r["command_id"]: r for r in await loop.results(2, timeout=30)}
        assert by_id[held.command_id]["status"] == "placed"
        assert (by_id[late.command_id]["status"], by_id[late.command_id]["attempts"]) == (
            "expired",
            0,
        )
        assert loop.calls_per_command() == Counter({held.command_id: 1})


async def _placing(loop: Loop, command_id: str) -> bool:
    return command_id in await placing_now(loop)
