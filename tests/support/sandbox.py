"""The FoneStorm sandbox and other small servers on real ports of 127.0.0.1, no mocks.

A plugin (``pytest_plugins`` in ``tests/conftest.py``): fixture ``sandbox``. Test modules import
the constants and context managers they use.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from bridge.fonestorm.client import FoneStormClient
from bridge.obs import http_spans
from bridge.sandbox.app import API_PREFIX, STATE_KEY, SandboxState, create_sandbox_app
from bridge.sandbox.settings import SandboxSettings
from bridge.settings import FoneStormSettings
from tests.support.servers import serve

TOKEN = "s3cret-sandbox-token"
OURS = "3215551081"
CALLEE = "3215551801"
SHUTDOWN_TIMEOUT = 2.0  # seconds the servers here wait for open requests when they stop


@dataclass
class Sandbox:
    url: str
    state: SandboxState


@asynccontextmanager
async def running_sandbox(**overrides: Any) -> AsyncIterator[Sandbox]:
    """A fast sandbox (short ring and call, short delivery backoff) accepting ``TOKEN``."""
    settings = SandboxSettings(
        **{
            "token": SecretStr(TOKEN),
            "account_code": "ACME",
            "ring_delay": 0.01,
            "call_duration": 0.03,
            **overrides,
        }
    )
    # Traced as the CLI's sandbox is, when a test turned tracing on.
    app = create_sandbox_app(settings, middlewares=http_spans.server_middlewares(f"{API_PREFIX}/"))
    runner, url = await serve(app, shutdown_timeout=SHUTDOWN_TIMEOUT)
    app[STATE_KEY].delivery_backoff = 0.01
    try:
        yield Sandbox(url, app[STATE_KEY])
    finally:
        await runner.cleanup()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A :func:`running_sandbox` with the default settings."""
    async with running_sandbox() as running:
        yield running


def make_client(
    http: aiohttp.ClientSession,
    base_url: str,
    token: str | None = TOKEN,
    read_timeout: float = 2.0,
) -> FoneStormClient:
    """A client of the API at ``base_url`` (the sandbox's is ``{url}/v2``)."""
    settings = FoneStormSettings(
        base_url=base_url,
        token=SecretStr(token) if token else None,
        connect_timeout=1.0,
        read_timeout=read_timeout,
    )
    return FoneStormClient(http, settings)


async def admin(
    http: aiohttp.ClientSession, sandbox: Sandbox, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """Call a sandbox endpoint; the status and the JSON answer."""
    async with http.request(method, f"{sandbox.url}{path}", json=body) as resp:
        return resp.status, await resp.json()


async def finished(sandbox: Sandbox, call_id: str) -> None:
    """Wait until the sandbox is done delivering the callbacks of ``call_id``."""
    await asyncio.wait_for(sandbox.state.calls[call_id].finished.wait(), 5)


def expected_fields(
    uid: str, direction: str, caller: str, to: str, status: str, **end: Any
) -> dict[str, Any]:
    """The callback fields the sandbox sends (``account_code`` is ``ACME``)."""
    common = {"uid": uid, "account_code": "ACME", "direction": direction, "type": "VOICE"}
    return {**common, "from": caller, "to": to, "status": status, **end}


@dataclass
class Caught:
    """A request the catcher received."""

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    content_type: str
    body: bytes

    def fields(self) -> dict[str, Any]:
        """The callback fields, whatever the delivery method."""
        if self.method == "GET":
            return dict(self.query)
        if self.content_type == "application/json":
            data: dict[str, Any] = json.loads(self.body)
            return data
        return dict(parse_qsl(self.body.decode()))


@dataclass
class Catcher:
    """A callback receiver that records every request; answers ``statuses`` first, then 200."""

    url: str = ""
    requests: list[Caught] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request."""
        self.requests.append(
            Caught(
                request.method,
                request.path,
                request.raw_path,
                dict(request.query),
                dict(request.headers),
                request.content_type,
                await request.read(),
            )
        )
        self.arrived.set()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"status": status}, status=status)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Caught]:
        """Wait until ``count`` requests arrived; all requests so far."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.requests


@asynccontextmanager
async def running_catcher() -> AsyncIterator[Catcher]:
    """A :class:`Catcher` served on any path."""
    catcher = Catcher()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", catcher.handle)
    runner, catcher.url = await serve(app, shutdown_timeout=SHUTDOWN_TIMEOUT)
    try:
        yield catcher
    finally:
        await runner.cleanup()


SetAnswer = Callable[[int, "bytes | str"], None]


@asynccontextmanager
async def running_canned() -> AsyncIterator[tuple[str, SetAnswer]]:
    """A server answering whatever ``set_answer(status, body)`` said: a misbehaving FoneStorm."""
    answer: dict[str, Any] = {"status": 200, "body": b""}

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=answer["status"], body=answer["body"])

    def set_answer(status: int, body: bytes | str) -> None:
        answer.update(status=status, body=body.encode() if isinstance(body, str) else body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner, url = await serve(app, shutdown_timeout=SHUTDOWN_TIMEOUT)
    try:
        yield url, set_answer
    finally:
        await runner.cleanup()
