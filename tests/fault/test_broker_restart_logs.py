"""A broker restart under a running receiver and worker logs one WARNING and one INFO about it.

aiokafka logs every failed attempt to reach a broker at ERROR: hundreds of lines while one
restarts. The bridge folds them (:mod:`bridge.kafka.broker_watch`): the broker going away is one
WARNING (node id, host:port), its return one INFO (and how long it was away), and the metrics
``bridge_kafka_broker_reachable`` and ``bridge_kafka_broker_disconnects_total`` follow it.
Runs on a dedicated broker, stopped and started under callback load and a worker consuming.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import aiohttp
import pytest

from bridge.app import create_app
from tests.support.callbacks import CALLBACK_PATH, callback
from tests.support.dedicated_broker import Broker
from tests.support.outage import outage_settings
from tests.support.sandbox import running_sandbox
from tests.support.servers import serve, wait_ready
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.fault]

WATCH = "bridge.kafka.broker_watch"
REACHABLE = 'bridge_kafka_broker_reachable{node_id="1"}'
DISCONNECTS = 'bridge_kafka_broker_disconnects_total{node_id="1"}'


class Captured(logging.Handler):
    """Every record that reached the handlers (what a log shipper would see)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, name: str, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.name == name and r.levelno == level]


async def _callbacks(http: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        async with http.post(url + CALLBACK_PATH, json=callback()) as response:
            assert response.status in (200, 503), response.status
        await asyncio.sleep(0.02)


@pytest.mark.timeout(300)
async def test_broker_restart_is_one_warning_and_one_info(dedicated_broker: Broker) -> None:
    captured = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(captured)
    root.setLevel(logging.INFO)
    try:
        async with running_sandbox() as sandbox:
            settings = outage_settings(
                dedicated_broker,
                sandbox.url,
                "rl",
                callbacks={"allow_unauthenticated": True},
                # The member outlives the restart: a session expiry is another story.
                worker={"session_timeout": 45.0},
            )
            app = create_app(settings, receiver=True, worker=True)
            runner, url = await serve(app)
            stop = asyncio.Event()
            try:
                await wait_ready(url, timeout=90)
                async with aiohttp.ClientSession() as http:
                    load = asyncio.create_task(_callbacks(http, url, stop))
                    await eventually(
                        lambda: _ready(http, url, True), "the worker and receiver to be ready", 90
                    )
                    started = len(captured.records)
                    await dedicated_broker.run("stop")
                    await eventually(lambda: _ready(http, url, False), "/readyz to answer 503", 90)
                    reachable_during = await _series(http, url, REACHABLE)
                    # The clients retry against no broker for a while (no upper bound asserted).
                    await asyncio.sleep(5.0)
                    await dedicated_broker.run("start")
                    await eventually(lambda: _ready(http, url, True), "/readyz to answer 200", 90)
                    # The watch probes brokers every second, so its lines may come after
                    # /readyz answers: the test asserts both, so it waits for both, then for
                    # stragglers.
                    await eventually(
                        lambda: _logged(captured, logging.WARNING), "the broker's WARNING", 90
                    )
                    await eventually(
                        lambda: _logged(captured, logging.INFO), "the broker's INFO", 90
                    )
                    await asyncio.sleep(2.0)
                    stop.set()
                    await load
                    disconnects = await _series(http, url, DISCONNECTS)
                    reachable = await _series(http, url, REACHABLE)
            finally:
                stop.set()
                await runner.cleanup()
    finally:
        root.removeHandler(captured)
        root.setLevel(level)

    during = captured.records[started:]
    loud = [r for r in during if r.levelno >= logging.WARNING]
    print(
        f"\nbroker restart: {len(loud)} lines at WARNING or above "
        f"{dict(Counter((r.name, r.levelname) for r in loud))}"
    )
    for record in loud:
        print(f"  {record.levelname} {record.name}: {record.getMessage()[:300]}")
    client_lines = [r for r in loud if r.name.startswith("aiokafka")]
    assert not client_lines, f"{len(client_lines)} aiokafka lines, e.g. {client_lines[:3]}"
    # The rest is the bridge's own: readiness, each ledger follower's first failed look...
    assert len(loud) <= 10, [r.getMessage() for r in loud]
    address = dedicated_broker.bootstrap
    [warning] = list(captured.lines(WATCH, logging.WARNING))
    assert f"Kafka broker 1 at {address} is unreachable" in warning
    [info] = list(captured.lines(WATCH, logging.INFO))
    assert f"Kafka broker 1 at {address} is reachable again after" in info
    assert (reachable_during, disconnects, reachable) == (0.0, 1.0, 1.0)


async def _logged(captured: Captured, level: int) -> bool:
    return bool(captured.lines(WATCH, level))


async def _series(http: aiohttp.ClientSession, url: str, series: str) -> float | None:
    """The value of ``series`` on /metrics, None when it is not exported."""
    async with http.get(f"{url}/metrics") as response:
        text = await response.text()
    found = [row for row in text.splitlines() if row.startswith(series + " ")]
    return float(found[0].split()[-1]) if found else None


async def _ready(http: aiohttp.ClientSession, url: str, expected: bool) -> bool:
    async with http.get(f"{url}/readyz") as response:
        return (response.status == 200) is expected
