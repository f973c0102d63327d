"""Fixtures that run the bridge's real HTTP server against the real Kafka broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.settings import Settings
from bridge.web.app import create_app


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


async def serve(app: web.Application, host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    """Serve ``app`` on a free port; returns the runner and base URL."""
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{host}:{port}"


async def wait_ready(url: str, timeout: float = 30.0) -> None:
    """Poll ``/readyz`` until it answers 200."""
    async with aiohttp.ClientSession() as session:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            if loop.time() > deadline:
                raise TimeoutError(f"{url} not ready after {timeout}s")
            await asyncio.sleep(0.1)


BridgeFactory = Callable[..., Awaitable[RunningBridge]]


@pytest.fixture
async def start_bridge(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]]
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
