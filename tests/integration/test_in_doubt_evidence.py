"""An ``in_doubt`` command whose call FoneStorm did create: its callbacks are the evidence.

The real worker, receiver and broker, the sandbox as FoneStorm. ``fail_after_create_next`` makes
the sandbox create the call and answer 500, so the command ends ``in_doubt`` (the default: an
ambiguous answer is not retried), and the sandbox then calls back about that call.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import pytest

from bridge.contracts.calls import WORKER_SOURCE, placed_event_id
from bridge.sandbox.state import CallRecord
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import Loop, closed_loop, command
from tests.support.kafka_records import headers_of, read_to_end
from tests.support.servers import metric

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# Long enough that a callback waiting for a placement's done never gives up on a slow machine.
CALLBACKS = {"correlation_wait": 30.0}
# The requests are held at the sandbox (below): the worker must not give up on them meanwhile.
FONESTORM = {"read_timeout": 30.0}


async def _calls_finished(loop: Loop, count: int) -> dict[str, CallRecord]:
    """The sandbox's calls by command id, once ``count`` exist and all their callbacks went."""
    state = loop.sandbox.state
    while len(state.calls) < count:
        await asyncio.sleep(0.01)
    calls = list(state.calls.values())
    await asyncio.gather(*(call.finished.wait() for call in calls))
    for call in calls:
        assert [d.result for d in call.deliveries] == ["delivered", "delivered"], call.deliveries
    return {call.idempotency_key or "": call for call in calls}


async def _call_events(loop: Loop) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every record on the call-events topic: the callbacks' events, the call.placed events.

    Read after every callback was answered: each answer comes once its events are on Kafka.
    """
    records = await read_to_end(
        loop.settings.kafka.bootstrap_servers, loop.settings.topics.call_events
    )
    callbacks, placed = [], []
    for record in records:
        headers = headers_of(record)
        event = json.loads(record.value)
        if headers["ce_type"] == "com.fonestorm.call.placed":
            assert headers["ce_source"] == WORKER_SOURCE
            assert headers["ce_id"] == event["event_id"]
            placed.append(event)
        else:
            callbacks.append(event)
    return callbacks, placed


async def test_an_in_doubt_commands_call_is_tagged_and_reconciled_once(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    async with closed_loop(start_bridge, callbacks=CALLBACKS) as loop:
        state = loop.sandbox.state
        state.update_faults({"fail_after_create_next": 1})
        sent = command(f"doubt-{uuid.uuid4()}", correlation_id="appt-17")
        await loop.send(sent)
        [result] = await loop.results(1)
        assert (result["status"], result["call_id"]) == ("in_doubt", None)
        call = (await _calls_finished(loop, 1))[sent.command_id]
        callbacks, placed = await _call_events(loop)
        reconciled = await metric(
            http, loop.bridge.url, 'bridge_callback_doubts_total{verdict="reconciled"}'
        )
    tags = sorted(
        (e["status"], e["call_id"], e["command_id"], e["correlation_id"]) for e in callbacks
    )
    assert tags == [
        ("BEGIN", call.id, sent.command_id, "appt-17"),
        ("END", call.id, sent.command_id, "appt-17"),
    ]
    assert len(placed) == 1, placed  # once, though two callbacks showed it
    [event] = placed
    assert event["reconciled"] is True
    assert (event["event_id"], event["call_id"]) == (placed_event_id(call.id), call.id)
    assert (event["command_id"], event["correlation_id"]) == (sent.command_id, "appt-17")
    assert (event["fonenumber"], event["to"]) == ("+13215551081", "+13215551801")
    assert reconciled == 1  # the BEGIN; the END was known by then


async def test_calls_of_two_in_doubt_commands_to_the_same_numbers_are_not_guessed(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    async with closed_loop(start_bridge, callbacks=CALLBACKS, fonestorm=FONESTORM) as loop:
        state = loop.sandbox.state
        state.delivery_timeout = 60.0  # a callback is answered once, however long it waits
        # All three create-call requests held until all are out: every call is created (and
        # calls back) after all three placements were written.
        state.update_faults({"hold": True, "fail_after_create_next": 3})
        first, second = command(f"first-{uuid.uuid4()}"), command(f"second-{uuid.uuid4()}")
        elsewhere = command(f"elsewhere-{uuid.uuid4()}", to="3215551802")
        await loop.send(first, second, elsewhere)
        while state.held < 3:
            await asyncio.sleep(0.01)
        state.update_faults({"hold": False})
        results = await loop.results(3)
        assert sorted(r["status"] for r in results) == ["in_doubt"] * 3
        calls = await _calls_finished(loop, 3)
        callbacks, placed = await _call_events(loop)
        ambiguous = await metric(
            http, loop.bridge.url, 'bridge_callback_doubts_total{verdict="ambiguous"}'
        )
    tags = {(e["call_id"], e["status"]): e["command_id"] for e in callbacks}
    assert len(callbacks) == len(tags) == 6
    ours = calls[elsewhere.command_id].id
    for command_id, call in calls.items():
        expected = command_id if call.id == ours else None
        assert tags[(call.id, "BEGIN")] == tags[(call.id, "END")] == expected, command_id
    # The other numbers' call is reconciled; of the two that may be either command's, none.
    assert [(e["call_id"], e["command_id"]) for e in placed] == [(ours, elsewhere.command_id)]
    assert ambiguous == 4  # each callback of the two calls, logged too
