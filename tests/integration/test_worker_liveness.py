"""A worker whose consume loop dies says so and fails liveness, rather than look alive."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from typing import Any

import aiohttp
import pytest

from tests.support.bridge_app import BridgeFactory
from tests.support.commands import closed_loop, command, worker_of

pytestmark = pytest.mark.integration


async def test_a_worker_loop_that_dies_fails_liveness_and_says_so(
    start_bridge: BridgeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Whatever kills the loop (a bug, a client error nobody foresaw), a pod that consumes
    # nothing must not look alive: /healthz fails, so Kubernetes restarts it.
    async with closed_loop(start_bridge) as loop:
        await loop.send(command(first := f"first-{uuid.uuid4()}"))
        await loop.results(1)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{loop.bridge.url}/healthz") as response:
                assert response.status == 200
            consumer = worker_of(loop.bridge)._consumer

            async def broken(*_: Any, **__: Any) -> Any:
                raise RuntimeError("a fault nobody foresaw")

            with caplog.at_level(logging.CRITICAL, logger="bridge.commands.service"):
                consumer.getmany = broken  # type: ignore[method-assign]
                async with asyncio.timeout(10):
                    while (response := await http.get(f"{loop.bridge.url}/healthz")).status == 200:
                        response.release()
                        await asyncio.sleep(0.05)
                body = await response.json()
        assert response.status == 503
        assert body == {
            "status": "stopped",
            "stopped": {"worker": "the worker loop failed: RuntimeError('a fault nobody foresaw')"},
        }
        [record] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
        assert "no more commands are consumed" in record.getMessage()
        assert record.exc_info is not None
        assert loop.calls_per_command() == Counter({first: 1})
