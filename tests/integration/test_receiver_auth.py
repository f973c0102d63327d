"""The receiver fails closed: no credentials, no receiver, unless the operator opts out."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.support.bridge_app import BridgeFactory
from tests.support.callbacks import CALLBACK_PATH, callback
from tests.support.kafka_records import consume_for

pytestmark = pytest.mark.integration


async def _cli(*args: str, **env: str) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli",
        *args,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.parametrize("command", ["receiver", "serve"])
async def test_the_receiver_refuses_to_start_without_credentials(command: str) -> None:
    code, err = await _cli(command)
    assert code == 2
    assert "needs basic-auth credentials" in err
    assert "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED=true" in err


async def test_a_user_without_a_password_is_a_settings_error_that_names_it() -> None:
    code, err = await _cli("receiver", BRIDGE_CALLBACKS__USERNAME="fone")
    assert code == 2
    assert "BRIDGE_CALLBACKS__USERNAME is set without a non-empty BRIDGE_CALLBACKS__PASSWORD" in err


async def test_the_opt_out_is_loud(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.app"):
        bridge = await start_bridge()  # the test fixture opts out explicitly
    assert "callback authentication is OFF" in caplog.text
    async with http.get(f"{bridge.url}/metrics") as response:
        assert "bridge_callbacks_unauthenticated 1.0" in await response.text()


async def test_a_flood_of_wrong_passwords_is_one_log_line_and_every_one_counted(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = await start_bridge(
        callbacks={"username": "fone", "password": "st0rm", "allow_unauthenticated": False}
    )
    wrong = {"Authorization": "Basic " + base64.b64encode(b"fone:guess").decode()}
    with caplog.at_level(logging.WARNING, logger="bridge.ingest.receiver"):
        for _ in range(50):
            async with http.post(
                bridge.url + CALLBACK_PATH, json=callback(), headers=wrong
            ) as response:
                assert response.status == 401
    lines = [r for r in caplog.records if "callbacks refused" in r.getMessage()]
    assert len(lines) == 1
    async with http.get(f"{bridge.url}/metrics") as response:
        metrics = await response.text()
    assert 'outcome="unauthorized"} 50.0' in metrics
    assert "bridge_callbacks_unauthenticated 0.0" in metrics


async def test_sources_outside_the_allowed_networks_get_403_and_nothing_is_produced(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    bridge = await start_bridge(callbacks={"allowed_networks": ["198.51.100.0/24"]})
    servers, topics = bridge.settings.kafka.bootstrap_servers, bridge.settings.topics
    # The test client is 127.0.0.1, which is not allowed, and not a trusted proxy either, so
    # its X-Forwarded-For is ignored.
    for headers in ({}, {"X-Forwarded-For": "198.51.100.7"}):
        async with http.post(
            bridge.url + CALLBACK_PATH, json=callback(), headers=headers
        ) as response:
            assert response.status == 403
            body = await response.text()
            assert json.loads(body)["error"]["code"] == "forbidden"
            assert "127.0.0.1" not in body  # what the bridge made of the request stays here
    assert await consume_for(servers, topics.call_events, seconds=0.3) == []
    assert await consume_for(servers, topics.dead_letters, seconds=0.2) == []


async def test_x_forwarded_for_is_believed_from_trusted_proxies_only(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    bridge = await start_bridge(
        callbacks={"allowed_networks": ["198.51.100.0/24"]},
        http={"trusted_proxies": ["127.0.0.0/8"]},
    )
    for forwarded, status in (
        ("198.51.100.7", 200),
        ("198.51.100.7, 203.0.113.1", 403),  # the hop next to the proxy is not allowed
        ("203.0.113.1, 198.51.100.7", 200),  # the sender's own claim on the left is ignored
    ):
        async with http.post(
            bridge.url + CALLBACK_PATH, json=callback(), headers={"X-Forwarded-For": forwarded}
        ) as response:
            assert response.status == status, forwarded


async def test_every_x_forwarded_for_line_counts_and_the_403_does_not_echo_it(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = await start_bridge(
        callbacks={"allowed_networks": ["198.51.100.0/24"]},
        http={"trusted_proxies": ["127.0.0.0/8"]},
    )
    # A proxy that adds its own line after the sender's: the sender's line proves nothing.
    bodies = {}
    for lines, status in (
        (["198.51.100.7", "203.0.113.1"], 403),
        (["203.0.113.1", "198.51.100.7"], 200),
    ):
        headers = CIMultiDict(("X-Forwarded-For", line) for line in lines)
        with caplog.at_level(logging.WARNING, logger="bridge.ingest.receiver"):
            async with http.post(
                bridge.url + CALLBACK_PATH, json=callback(), headers=headers
            ) as response:
                assert response.status == status, lines
                bodies[status] = await response.text()
    assert json.loads(bodies[403])["error"]["code"] == "forbidden"
    assert "203.0.113.1" not in bodies[403]
    assert "127.0.0.1" not in bodies[403]
    refused = [r.getMessage() for r in caplog.records if "callbacks refused" in r.getMessage()]
    assert len(refused) == 1
    assert "203.0.113.1 through 127.0.0.1" in refused[0]
