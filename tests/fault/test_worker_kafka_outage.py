"""The broker goes away between FoneStorm's answer and the worker's record of it.

The create-call request is held in the sandbox while the dedicated broker stops; released, the
call is created, and the ledger ``done`` and the result cannot be written until the broker is
back. They must then be written as they were: one call, reported ``placed`` with its id, with
its ``CallPlaced`` event, never ``in_doubt`` and never placed again.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer

from bridge.app import create_app
from tests.support.commands import command
from tests.support.dedicated_broker import Broker
from tests.support.kafka_records import consume_all, read_to_end
from tests.support.outage import outage_settings
from tests.support.sandbox import running_sandbox
from tests.support.servers import serve
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.mark.timeout(240)
async def test_broker_restart_after_the_answer_records_it_without_a_second_call(
    dedicated_broker: Broker,
) -> None:
    async with running_sandbox() as sandbox:
        settings = outage_settings(
            dedicated_broker,
            sandbox.url,
            "wo",
            fonestorm={"read_timeout": 60},
            worker={"rebalance_timeout": 90.0},
        )
        app = create_app(settings, receiver=False, worker=True)
        runner, _ = await serve(app)
        try:
            sandbox.state.update_faults({"hold": True})
            cmd = command(f"outage-{uuid.uuid4()}")
            producer = AIOKafkaProducer(bootstrap_servers=dedicated_broker.bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(
                    "wo.commands", cmd.model_dump_json().encode(), key=cmd.command_id.encode()
                )
            finally:
                await producer.stop()
            await eventually(lambda: sandbox.state.held == 1, "the held create-call", 60)
            await dedicated_broker.run("stop")
            sandbox.state.update_faults({"hold": False})  # FoneStorm answers: the call exists
            await eventually(lambda: len(sandbox.state.calls) == 1, "the call", 10)
            await asyncio.sleep(3.0)  # the worker retries its writes against no broker
            await dedicated_broker.run("start")
            [result] = [
                json.loads(r.value)
                for r in await consume_all(
                    dedicated_broker.bootstrap, "wo.results", expected=1, timeout=60
                )
            ]
            [call] = sandbox.state.calls.values()
            assert (result["status"], result["call_id"]) == ("placed", call.id)
            # The worker writes the result and the call's CallPlaced side by side, in no order
            # between them: the result seen, the event may still be on its way.
            events = await consume_all(dedicated_broker.bootstrap, "wo.events", expected=1)
            placed = [json.loads(r.value) for r in events]
            assert [e["call_id"] for e in placed if "placed_at" in e] == [call.id]
            ledger = await read_to_end(dedicated_broker.bootstrap, "wo.ledger")
            assert [json.loads(r.value)["state"] for r in ledger][-1] == "done"
            await asyncio.sleep(1.0)
            assert Counter(c.idempotency_key for c in sandbox.state.calls.values()) == {
                cmd.command_id: 1
            }
        finally:
            await runner.cleanup()
