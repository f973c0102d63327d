"""Registry mode's credentials on the wire: sent to the registry, never to another origin.

A real HTTP server in front of the client stands for a registry that demands basic auth (the
local Apicurio runs without auth); it answers as the Confluent API does.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bridge.schema_registry.client import RegistryClient, RegistryRefused

pytestmark = pytest.mark.integration

USER, PASSWORD = "bridge-ü", "p:ss"


def _expected() -> str:
    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode("ascii")


class Recorder:
    """Each request's path and its Authorization header, as the server received them."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def middleware(self) -> Middleware:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.seen.append((request.path, request.headers.get("Authorization")))
            return await handler(request)

        return record


async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[str, Recorder]]:
    """Another origin that a redirect might send the client to."""
    recorder = Recorder()

    async def anything(_: web.Request) -> web.Response:
        return web.json_response({"compatibilityLevel": "NONE"})

    app = web.Application(middlewares=[recorder.middleware()])
    app.router.add_get("/{tail:.*}", anything)
    async for url in _serve(app):
        yield url, recorder


@pytest.fixture
async def registry(elsewhere: tuple[str, Recorder]) -> AsyncIterator[tuple[str, Recorder]]:
    """A registry that answers 401 without the right credentials."""
    recorder = Recorder()

    async def config(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != _expected():
            return web.json_response({"error_code": 401, "message": "Unauthorized"}, status=401)
        return web.json_response({"compatibilityLevel": "BACKWARD"})

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound(f"{elsewhere[0]}/config/moved")

    app = web.Application(middlewares=[recorder.middleware()])
    app.router.add_get("/config/moved", moved)
    app.router.add_get("/config/{subject}", config)
    async for url in _serve(app):
        yield url, recorder


async def test_credentials_reach_the_registry(registry: tuple[str, Recorder]) -> None:
    url, recorder = registry
    client = RegistryClient(url, timeout=5, username=USER, password=PASSWORD)
    try:
        assert await client.compatibility("events-CallEvent") == "BACKWARD"
    finally:
        await client.close()
    assert recorder.seen == [("/config/events-CallEvent", _expected())]


async def test_no_credentials_is_refused_with_the_status(registry: tuple[str, Recorder]) -> None:
    url, _ = registry
    client = RegistryClient(url, timeout=5)
    try:
        with pytest.raises(RegistryRefused) as refused:
            await client.compatibility("events-CallEvent")
    finally:
        await client.close()
    assert refused.value.status == 401


async def test_a_redirect_to_another_origin_carries_no_credentials(
    registry: tuple[str, Recorder], elsewhere: tuple[str, Recorder]
) -> None:
    url, _ = registry
    client = RegistryClient(url, timeout=5, username=USER, password=PASSWORD)
    try:
        await client.compatibility("moved")
    finally:
        await client.close()
    assert elsewhere[1].seen == [("/config/moved", None)]
