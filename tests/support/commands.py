"""Place-call commands, and the closed loop under test: real Kafka, the sandbox as FoneStorm,
the bridge in-process."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from bridge.app import WORKER
from bridge.commands.worker import CommandWorker
from bridge.contracts.commands import PlaceCallCommand
from bridge.contracts.ledger import LedgerState
from bridge.fonestorm.registration import register_callbacks
from bridge.settings import Settings
from tests.support.bridge_app import BridgeFactory, RunningBridge
from tests.support.kafka_records import Record, consume_all, consume_for
from tests.support.sandbox import OURS, TOKEN, Sandbox, running_sandbox

#: FoneStorm settings under which requests held in the sandbox do not time out meanwhile.
PATIENT = {"read_timeout": 20.0}


@dataclass
class Loop:
    """A sandbox, a bridge (receiver + worker) pointed at it, and helpers to drive them."""

    sandbox: Sandbox
    bridge: RunningBridge

    @property
    def settings(self) -> Settings:
        return self.bridge.settings

    async def send(self, *commands: PlaceCallCommand | bytes, key: bytes | None = None) -> None:
        """Produce commands (or raw values) keyed by command id."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
        )
        await producer.start()
        try:
            for command in commands:
                if isinstance(command, PlaceCallCommand):
                    value, k = command.model_dump_json().encode(), command.command_id.encode()
                else:
                    value, k = command, key
                await producer.send_and_wait(self.settings.topics.place_call, value, key=k)
        finally:
            await producer.stop()

    async def results(self, expected: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        records = await consume_all(
            self.settings.kafka.bootstrap_servers,
            self.settings.topics.place_call_results,
            expected=expected,
            timeout=timeout,
        )
        return [json.loads(r.value) for r in records]

    async def events(self, expected: int, timeout: float = 20.0) -> list[Record]:
        return await consume_all(
            self.settings.kafka.bootstrap_servers,
            self.settings.topics.call_events,
            expected=expected,
            timeout=timeout,
        )

    async def dead_letters(self, expected: int) -> list[dict[str, Any]]:
        records = await consume_all(
            self.settings.kafka.bootstrap_servers, self.settings.topics.dead_letters,
            expected=expected,
        )  # fmt: skip
        return [json.loads(r.value) for r in records]

    def calls_per_command(self) -> Counter[str | None]:
        """How many calls the sandbox created for each idempotency key (command id)."""
        return Counter(call.idempotency_key for call in self.sandbox.state.calls.values())


def command(command_id: str, to: str = "3215551801", **extra: Any) -> PlaceCallCommand:
    return PlaceCallCommand.model_validate(
        {"command_id": command_id, "fonenumber": OURS, "to": to, "tts": "Hello"} | extra
    )


@asynccontextmanager
async def closed_loop(
    start_bridge: BridgeFactory, method: str = "JSON", ready: bool = True, **overrides: Any
) -> AsyncIterator[Loop]:
    """Sandbox + bridge (receiver and worker), callbacks registered with ``method``."""
    sandbox_overrides = overrides.pop("sandbox", {})
    async with running_sandbox(**sandbox_overrides) as sandbox:
        # Our FoneNumber, as in production: the worker calls its country only (fail closed).
        fonestorm = {
            "base_url": f"{sandbox.url}/v2",
            "token": TOKEN,
            "read_timeout": 1.0,
            "fonenumbers": [OURS],
        }
        fonestorm |= overrides.pop("fonestorm", {})
        worker = {"backoff_initial": 0.05, "backoff_max": 0.5, "max_retry_seconds": 20}
        worker |= overrides.pop("worker", {})
        bridge = await start_bridge(
            ready=ready, worker_enabled=True, fonestorm=fonestorm, worker=worker,
            http={"shutdown_timeout": 2.0}, **overrides,
        )  # fmt: skip
        settings = bridge.settings.model_copy(
            update={
                "fonestorm": bridge.settings.fonestorm.model_copy(
                    update={
                        "public_url": bridge.callback_url,
                        "fonenumbers": [OURS],
                        "callback_method": method,
                        "token": SecretStr(TOKEN),
                    }
                )
            }
        )
        await register_callbacks(settings)
        yield Loop(sandbox, bridge)


def worker_of(bridge: RunningBridge) -> CommandWorker:
    """The command worker of an in-process bridge."""
    return bridge.app[WORKER]


async def second_worker(start_bridge: BridgeFactory, loop: Loop, **worker: Any) -> RunningBridge:
    """Another worker process-alike: the topics, group and sandbox of ``loop``'s, its worker
    settings but for ``worker``."""
    first = loop.settings
    return await start_bridge(
        ready=False,
        worker_enabled=True,
        topics=first.topics.model_dump(),
        fonestorm=first.fonestorm.model_dump(),
        worker={**first.worker.model_dump(), **worker},
        http={"shutdown_timeout": 2.0},
    )


async def placing_now(loop: Loop) -> set[str]:
    """Commands whose latest ledger entry is ``placing``."""
    records = await consume_for(
        loop.settings.kafka.bootstrap_servers, loop.settings.topics.command_ledger, seconds=1
    )
    latest = {r.key: json.loads(r.value)["state"] for r in records if r.value is not None}
    return {key.decode() for key, state in latest.items() if state == LedgerState.PLACING}


async def produce_commands(bootstrap: str, topic: str, *commands: PlaceCallCommand) -> None:
    """Produce ``commands`` to ``topic``, keyed by command id, as a client of the bridge does."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for cmd in commands:
            await producer.send_and_wait(
                topic, cmd.model_dump_json().encode(), key=cmd.command_id.encode()
            )
    finally:
        await producer.stop()
