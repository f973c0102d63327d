"""Serve an aiohttp app on a real port of 127.0.0.1, wait for a server to be ready, read its
metrics."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web


async def serve(
    app: web.Application, host: str = "127.0.0.1", *, shutdown_timeout: float = 5.0
) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on a free port; returns the runner and base URL."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
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


async def metric(http: aiohttp.ClientSession, url: str, series: str) -> float:
    """The value of ``series`` (``name`` or ``name{labels}``) on ``url``'s /metrics; 0 if absent."""
    async with http.get(f"{url}/metrics") as response:
        text = await response.text()
    found = [row for row in text.splitlines() if row.startswith(series + " ")]
    return float(found[0].split()[-1]) if found else 0.0


async def refusing_readiness(url: str) -> bool:
    """Whether ``url``'s ``/readyz`` answers 503: a stopping bridge says so first."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
        return response.status == 503
