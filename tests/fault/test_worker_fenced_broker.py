"""A worker whose group consumer starts while Kafka names no live broker.

A broker that has just started, or was thawed after a long pause, serves requests while the
controller still fences it, and its metadata then names no live broker. The worker's consumer
is started at such a moment (the link to the controller cut, on a broker of the test's own)
and the broker is served again right after: the worker must join its group once Kafka names
the broker, and place the command, rather than have its group coordination fail for good.
What is asserted comes out of Kafka (the result) and off the wire (the create-call).
"""

from __future__ import annotations

import json
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bridge.app import create_app
from bridge.commands import service
from bridge.kafka.topics import ensure_topics
from tests.support.commands import command
from tests.support.dedicated_broker import FenceableBroker
from tests.support.kafka_records import consume_all
from tests.support.outage import outage_settings
from tests.support.sandbox import running_sandbox
from tests.support.servers import serve

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.mark.timeout(300)
async def test_a_worker_started_on_a_fenced_broker_joins_once_it_is_live(
    fenceable_broker: FenceableBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = fenceable_broker
    fenced = False

    class StartedOnAFencedBroker(AIOKafkaConsumer):  # type: ignore[misc]
        """The worker's group consumer: it bootstraps while the broker is fenced."""

        async def start(self) -> None:
            nonlocal fenced
            if fenced:
                return await super().start()  # type: ignore[no-any-return]
            fenced = True
            await broker.fence()
            try:
                await super().start()
            finally:
                broker.unfence()

    monkeypatch.setattr(service, "AIOKafkaConsumer", StartedOnAFencedBroker)
    async with running_sandbox() as sandbox:
        settings = outage_settings(broker, sandbox.url, "wf")
        await ensure_topics(settings, [settings.topics.place_call])
        cmd = command(f"fenced-{uuid.uuid4()}")
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                "wf.commands", cmd.model_dump_json().encode(), key=cmd.command_id.encode()
            )
        finally:
            await producer.stop()
        runner, _ = await serve(create_app(settings, receiver=False, worker=True))
        try:
            [record] = await consume_all(broker.bootstrap, "wf.results", expected=1, timeout=90)
            result = json.loads(record.value)
            [call] = sandbox.state.calls.values()
            assert (result["status"], result["call_id"]) == ("placed", call.id)
        finally:
            await runner.cleanup()
