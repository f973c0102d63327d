"""Fixtures that run the bridge's real HTTP server against the real Kafka broker.

A plugin (``pytest_plugins`` in ``tests/conftest.py``): fixtures ``start_bridge`` and ``http``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.app import create_app
from bridge.settings import Settings
from tests.support.kafka_broker import NewTopicFactory
from tests.support.servers import serve, wait_ready


@dataclass
class RunningBridge:
    """A bridge app served on a real port, with the topics it writes to."""

    url: str
    settings: Settings
    app: web.Application
    runner: web.AppRunner

    @property
    def callback_url(self) -> str:
        return f"{self.url}/callbacks/calls"


BridgeFactory = Callable[..., Awaitable[RunningBridge]]
"""Type of the ``start_bridge`` fixture."""

#: The dead-letter signing keys every test bridge has unless a test says otherwise.
CALLBACK_SIGNING_KEY = b"test-callback-dead-letter-signing-key-0123"
COMMAND_SIGNING_KEY = b"test-command-dead-letter-signing-key-456789"


@pytest.fixture
async def start_bridge(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> AsyncIterator[BridgeFactory]:
    """Factory: start a bridge on fresh topics; ``overrides`` are nested settings dicts."""
    running: list[RunningBridge] = []

    async def start(
        ready: bool = True, worker_enabled: bool = False, **overrides: Any
    ) -> RunningBridge:
        topics = {
            "call_events": await new_topic("events"),
            "dead_letters": await new_topic("dlq"),
            "place_call": await new_topic("commands", partitions=3),
            "place_call_results": await new_topic("results"),
            "command_ledger": await new_topic("ledger"),
        }
        data: dict[str, Any] = {
            "kafka": {"bootstrap_servers": kafka_bootstrap, "produce_timeout": 5.0},
            "topics": topics,
            "http": {"host": "127.0.0.1", "port": 0},
        }
        # Most tests post callbacks without credentials: opt out of fail-closed explicitly.
        data["callbacks"] = {"allow_unauthenticated": True}
        data["dead_letters"] = {
            "callback_signing_key": CALLBACK_SIGNING_KEY.decode(),
            "command_signing_key": COMMAND_SIGNING_KEY.decode(),
        }
        for section, values in overrides.items():
            data.setdefault(section, {}).update(values)
        if worker_enabled:
            data.setdefault("worker", {}).setdefault("group_id", f"g-{topics['place_call']}")
        settings = Settings.model_validate(data)
        app = create_app(settings, worker=worker_enabled)
        runner, url = await serve(app)
        bridge = RunningBridge(url=url, settings=settings, app=app, runner=runner)
        running.append(bridge)
        if ready:
            await wait_ready(url)
        return bridge

    yield start
    for bridge in running:
        await bridge.runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for talking to servers under test."""
    async with aiohttp.ClientSession() as session:
        yield session
