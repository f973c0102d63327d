"""The bridge over TLS (security_protocol=SSL) against real local Kafka brokers.

Two private brokers, started together: one whose SSL listener only authenticates itself
(``ssl.client.auth=none``) and one that requires client certificates (mTLS). Each has its own
throwaway CA made by ``scripts/local-kafka``, so the other broker's CA is a realistic wrong CA.
Records are read back over the brokers' plaintext listeners.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.app import create_app
from bridge.settings import Settings
from tests.support.callbacks import callback
from tests.support.kafka_records import consume_all
from tests.support.paths import LOCAL_KAFKA
from tests.support.ports import free_ports
from tests.support.security import secured_settings
from tests.support.servers import serve, wait_ready

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class TlsBroker:
    """A running private broker with a PLAINTEXT and an SSL listener."""

    name: str
    plaintext: str  # bootstrap of the PLAINTEXT listener (for reading back)
    ssl: str  # bootstrap of the SSL listener
    cafile: str  # the instance's throwaway CA
    certfile: str  # a client certificate signed by that CA
    keyfile: str
    server_log: Path

    def failed_handshakes(self) -> int:
        """Client TLS handshakes the broker refused so far (from its log)."""
        text = self.server_log.read_text(encoding="utf-8", errors="replace")
        return sum(
            "Failed authentication" in line and "SSL handshake failed" in line
            for line in text.splitlines()
        )


def launcher(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LOCAL_KAFKA), *args], capture_output=True, text=True, check=False, timeout=60
    )


@pytest.fixture(scope="module")
def tls_brokers() -> Iterator[tuple[TlsBroker, TlsBroker]]:
    """(server-authenticated broker, broker requiring client certificates), started in parallel."""
    names = [f"tls-{os.getpid()}", f"mtls-{os.getpid()}"]
    ports = free_ports(6)
    starts = []
    for index, (name, client_auth) in enumerate(zip(names, ["none", "required"], strict=True)):
        port, controller, ssl_port = ports[3 * index : 3 * index + 3]
        command = [
            str(LOCAL_KAFKA), "start", "--name", name, "--port", str(port), "--controller-port",
            str(controller), "--ssl-port", str(ssl_port), "--ssl-client-auth", client_auth,
            "--fresh", "--owner-pid", str(os.getpid()), "--timeout", "90",
        ]  # fmt: skip
        starts.append(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    try:
        brokers = []
        for name, process in zip(names, starts, strict=True):
            _, stderr = process.communicate(timeout=100)
            assert process.returncode == 0, stderr
            status = launcher("status", "--name", name, "--json")
            assert status.returncode == 0, status.stdout + status.stderr
            doc: dict[str, Any] = json.loads(status.stdout)
            tls = doc["tls"]
            brokers.append(
                TlsBroker(
                    name=name,
                    plaintext=doc["bootstrap"],
                    ssl=doc["ssl_bootstrap"],
                    cafile=tls["ssl_cafile"],
                    certfile=tls["ssl_certfile"],
                    keyfile=tls["ssl_keyfile"],
                    server_log=Path(doc["logs"]) / "server.log",
                )
            )
        yield brokers[0], brokers[1]
    finally:
        for process in starts:
            if process.poll() is None:
                process.kill()
                process.communicate()
        for name in names:
            launcher("stop", "--name", name, "--purge")


def tls_settings(
    bootstrap: str,
    cafile: str | None,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> Settings:
    return secured_settings(
        bootstrap_servers=bootstrap, security_protocol="SSL",
        ssl_cafile=cafile, ssl_certfile=certfile, ssl_keyfile=keyfile,
    )  # fmt: skip


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)


async def callback_lands(settings: Settings, plaintext: str, uid: str) -> None:
    """Start the bridge, wait until ready, post one callback; assert it is in Kafka."""
    runner, url = await serve(create_app(settings))
    try:
        await wait_ready(url, timeout=60)
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/callbacks/calls", json=callback(uid=uid)) as response,
        ):
            assert response.status == 200, await response.text()
    finally:
        await runner.cleanup()
    [record] = await consume_all(plaintext, settings.topics.call_events, expected=1)
    assert record.key == uid.encode()


async def assert_refused(settings: Settings, refused: Callable[[], bool]) -> None:
    """Start the bridge; once ``refused()`` shows Kafka refused it, it must still be unready."""
    runner, url = await serve(create_app(settings))
    try:
        await wait_until(refused)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/readyz") as response:
                assert response.status == 503
                body = await response.json()
                assert body["checks"]["kafka"] is False
            async with http.post(f"{url}/callbacks/calls", json=callback(uid="x")) as r:
                assert r.status == 503
    finally:
        await runner.cleanup()


async def test_callback_over_ssl(tls_brokers: tuple[TlsBroker, TlsBroker]) -> None:
    broker, _ = tls_brokers
    # Only the broker is authenticated: CA given, no client certificate.
    settings = tls_settings(broker.ssl, broker.cafile)
    await callback_lands(settings, broker.plaintext, "ssl-call")


async def test_callback_over_mtls(tls_brokers: tuple[TlsBroker, TlsBroker]) -> None:
    _, broker = tls_brokers
    settings = tls_settings(broker.ssl, broker.cafile, broker.certfile, broker.keyfile)
    await callback_lands(settings, broker.plaintext, "mtls-call")


async def test_mtls_without_client_certificate_is_not_ready(
    tls_brokers: tuple[TlsBroker, TlsBroker],
) -> None:
    _, broker = tls_brokers
    before = broker.failed_handshakes()
    settings = tls_settings(broker.ssl, broker.cafile)
    # The broker itself logs that it refused the handshake (no client certificate).
    await assert_refused(settings, lambda: broker.failed_handshakes() > before)


@pytest.mark.parametrize("ca", ["other-broker-ca", "system-cas"])
async def test_untrusted_broker_certificate_is_not_ready(
    tls_brokers: tuple[TlsBroker, TlsBroker], ca: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker, other = tls_brokers
    cafile = other.cafile if ca == "other-broker-ca" else None  # None: the system's CAs
    settings = tls_settings(broker.ssl, cafile)
    caplog.set_level(logging.WARNING)

    def verify_failed() -> bool:
        return any("CERTIFICATE_VERIFY_FAILED" in r.getMessage() for r in caplog.records)

    await assert_refused(settings, verify_failed)
