"""With BRIDGE_HTTP__ADMIN_PORT the public port answers callbacks only; operations move apart."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bridge import cli
from tests.support.bridge_app import BridgeFactory
from tests.support.callbacks import CALLBACK_PATH, callback
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


async def test_operations_endpoints_move_to_the_admin_port(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    admin = free_port()
    bridge = await start_bridge(ready=False, http={"admin_port": admin})
    admin_url = f"http://127.0.0.1:{admin}"
    for _ in range(200):
        async with http.get(f"{admin_url}/readyz") as response:
            if response.status == 200:
                break
        await asyncio.sleep(0.05)
    assert response.status == 200
    async with http.get(f"{admin_url}/metrics") as response:
        assert "bridge_kafka_ready 1.0" in await response.text()
    for path in ("/healthz", "/readyz", "/metrics"):
        async with http.get(bridge.url + path) as response:
            assert response.status == 404, path
            assert (await response.json())["error"]["code"] == "not_found"
    async with http.post(bridge.url + CALLBACK_PATH, json=callback()) as response:
        assert response.status == 200
    async with http.post(f"{admin_url}{CALLBACK_PATH}", json=callback()) as response:
        assert response.status == 404


async def test_the_image_healthcheck_asks_the_admin_port(
    start_bridge: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = free_port()
    bridge = await start_bridge(ready=False, http={"admin_port": admin})
    monkeypatch.setenv("BRIDGE_HTTP__PORT", bridge.url.rsplit(":", 1)[1])
    monkeypatch.setenv("BRIDGE_HTTP__ADMIN_PORT", str(admin))
    # The CLI blocks (urllib): run it off the loop that serves the bridge.
    assert await asyncio.to_thread(cli.main, ["healthcheck"]) == 0
    monkeypatch.setenv("BRIDGE_HTTP__ADMIN_PORT", str(free_port()))
    assert await asyncio.to_thread(cli.main, ["healthcheck"]) == 1
