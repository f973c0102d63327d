"""The bridge over SASL/SCRAM against a real local Kafka with a SASL_PLAINTEXT listener."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import aiohttp
import pytest

from bridge.app import create_app
from bridge.settings import Settings
from tests.support.callbacks import callback
from tests.support.kafka_records import consume_all
from tests.support.paths import LOCAL_KAFKA
from tests.support.ports import free_port
from tests.support.security import secured_settings
from tests.support.servers import serve, wait_ready

pytestmark = pytest.mark.integration

USER, PASSWORD = "bridge", "scram-secret-1"


@pytest.fixture(scope="module")
def sasl_kafka() -> Iterator[tuple[str, str]]:
    """A private broker: (plaintext bootstrap, SASL_PLAINTEXT bootstrap) with one SCRAM user."""
    name = f"sasl-{os.getpid()}"
    port, controller, sasl = free_port(), free_port(), free_port()
    result = subprocess.run(
        [str(LOCAL_KAFKA), "start", "--name", name, "--port", str(port), "--controller-port",
         str(controller), "--sasl-port", str(sasl), "--scram-user", f"{USER}:{PASSWORD}",
         "--fresh"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    try:
        yield f"127.0.0.1:{port}", f"127.0.0.1:{sasl}"
    finally:
        subprocess.run(
            [str(LOCAL_KAFKA), "stop", "--name", name, "--purge"], check=False, timeout=60,
            capture_output=True,
        )  # fmt: skip


def sasl_settings(bootstrap: str, password: str, mechanism: str) -> Settings:
    return secured_settings(
        bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism, sasl_username=USER, sasl_password=password,
    )  # fmt: skip


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_callback_over_sasl_scram(sasl_kafka: tuple[str, str], mechanism: str) -> None:
    plaintext, sasl = sasl_kafka
    settings = sasl_settings(sasl, PASSWORD, mechanism)
    runner, url = await serve(create_app(settings))
    try:
        await wait_ready(url, timeout=60)
        body = callback(uid="sasl-call")
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/callbacks/calls", json=body) as response,
        ):
            assert response.status == 200
    finally:
        await runner.cleanup()
    # Read back over the plaintext listener of the same broker: the record really landed.
    [record] = await consume_all(plaintext, settings.topics.call_events, expected=1)
    assert record.key == b"sasl-call"


async def test_wrong_sasl_password_is_not_ready(sasl_kafka: tuple[str, str]) -> None:
    _, sasl = sasl_kafka
    settings = sasl_settings(sasl, "wrong-password", "SCRAM-SHA-512")
    runner, url = await serve(create_app(settings))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/readyz") as response:
                assert response.status == 503
            async with http.post(f"{url}/callbacks/calls", json={"uid": "x"}) as response:
                assert response.status == 503
    finally:
        await runner.cleanup()
