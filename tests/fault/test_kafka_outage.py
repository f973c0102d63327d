"""The Kafka broker stopped for several seconds and restarted while callbacks keep arriving.

Runs on a dedicated broker (the ``dedicated_broker`` fixture), never the session one, so
stopping it cannot disturb other tests. The receiver is the real app, served in-process
on a real port, and is not restarted: it has to find the broker again by itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import pytest

from bridge.app import create_app
from bridge.settings import Settings
from tests.support.callbacks import CALLBACK_PATH, callback
from tests.support.dedicated_broker import Broker
from tests.support.kafka_records import read_to_end
from tests.support.servers import serve, wait_ready
from tests.support.stats import percentile

pytestmark = [pytest.mark.integration, pytest.mark.fault]

OUTAGE_SECONDS = 6.0
PRODUCE_TIMEOUT = 1.0
CLIENTS = 8


@dataclass
class Answer:
    started: float
    ended: float
    status: int
    event_id: str | None = None
    retry_after: str | None = None


@dataclass
class Load:
    answers: list[Answer] = field(default_factory=list)
    readiness: list[tuple[float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def _client(session: aiohttp.ClientSession, url: str, load: Load, limit: int) -> None:
    sent = 0
    while not load.stop.is_set() and sent < limit:
        sent += 1
        data = callback(status="END" if sent % 2 else "BEGIN")
        started = time.monotonic()
        try:
            async with session.post(url + CALLBACK_PATH, json=data) as response:
                body = await response.json()
                load.answers.append(
                    Answer(started, time.monotonic(), response.status,
                           body.get("event_id"), response.headers.get("Retry-After"))
                )  # fmt: skip
        except aiohttp.ClientError as exc:
            load.errors.append(repr(exc))
            await asyncio.sleep(0.05)


async def _poll_readiness(session: aiohttp.ClientSession, url: str, load: Load) -> None:
    while not load.stop.is_set():
        async with session.get(f"{url}/readyz") as response:
            load.readiness.append((time.monotonic(), response.status))
        await asyncio.sleep(0.1)


@pytest.mark.timeout(240)
async def test_broker_outage_answers_503_loses_nothing_and_recovers(
    dedicated_broker: Broker,
) -> None:
    settings = Settings.model_validate(
        {
            "kafka": {
                "bootstrap_servers": dedicated_broker.bootstrap,
                "produce_timeout": PRODUCE_TIMEOUT,
                "create_topics": True,
                "topic_partitions": 3,
            },
            "topics": {"call_events": "fault.events", "dead_letters": "fault.dlq"},
            "http": {"host": "127.0.0.1", "port": 0},
            "callbacks": {"allow_unauthenticated": True},
        }
    )
    app = create_app(settings)
    runner, url = await serve(app)
    load = Load()
    marks: dict[str, float] = {}
    try:
        await wait_ready(url, timeout=60)
        async with aiohttp.ClientSession() as session:
            tasks = [
                asyncio.create_task(_client(session, url, load, 20_000)) for _ in range(CLIENTS)
            ]
            tasks.append(asyncio.create_task(_poll_readiness(session, url, load)))
            await asyncio.sleep(2.0)
            marks["stop"] = time.monotonic()
            await dedicated_broker.run("stop")
            marks["stopped"] = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS)
            marks["restart"] = time.monotonic()
            await dedicated_broker.run("start")
            marks["restarted"] = time.monotonic()
            # Recovered: callbacks are acknowledged again (bounded wait), then a little more load.
            async with asyncio.timeout(60):
                while not any(
                    a.status == 200 and a.started > marks["restarted"] for a in load.answers
                ):
                    await asyncio.sleep(0.1)
            marks["recovered"] = time.monotonic()
            await asyncio.sleep(2.0)
            load.stop.set()
            await asyncio.gather(*tasks)
    finally:
        load.stop.set()
        await runner.cleanup()

    acked = [a.event_id for a in load.answers if a.status == 200]
    records = await read_to_end(dedicated_broker.bootstrap, "fault.events")
    in_kafka = Counter(json.loads(r.value)["event_id"] for r in records)
    outage = (marks["stopped"], marks["restart"])
    during = [a for a in load.answers if outage[0] <= a.started and a.ended <= outage[1]]
    statuses = Counter(a.status for a in load.answers)
    # Readiness learns of the outage from a failed produce (PRODUCE_TIMEOUT) or metadata probe
    # (every Publisher.probe_interval): it may lag the broker by that much, no more.
    lag = PRODUCE_TIMEOUT + 2.0 + 0.5
    ready_during = [(t - outage[0], s) for t, s in load.readiness if outage[0] <= t <= outage[1]]
    first_down = min((t for t, s in ready_during if s == 503), default=None)
    ready_after = [s for t, s in load.readiness if t >= marks["recovered"]]
    first_ready = min(
        (t for t, s in load.readiness if t > marks["restarted"] and s == 200), default=None
    )
    during_latency = [a.ended - a.started for a in during]
    print(
        f"\nKafka outage: broker stop took {marks['stopped'] - marks['stop']:.1f}s, down "
        f"{marks['restart'] - marks['stopped']:.1f}s, restart took "
        f"{marks['restarted'] - marks['restart']:.1f}s; first 2xx "
        f"{marks['recovered'] - marks['restarted']:.1f}s after the broker answered, /readyz 503 "
        f"{first_down or 0:.1f}s into the outage and 200 again "
        f"{(first_ready or 0) - marks['restarted']:.1f}s after it. Answers "
        f"{dict(sorted(statuses.items()))}, during the outage {len(during)} all "
        f"{dict(Counter(a.status for a in during))} (p99 {percentile(during_latency, 0.99):.2f}s)"
        f"; Kafka holds {len(records)} records, {len(in_kafka)} distinct event ids, "
        f"{sum(1 for e in acked if e in in_kafka)} of {len(acked)} acknowledged "
        f"({len(set(in_kafka) - set(acked))} more from 503'd requests delivered late)."
    )
    assert not load.errors, load.errors[:5]
    assert set(statuses) <= {200, 503}, statuses
    assert any(a.status == 200 and a.ended < marks["stop"] for a in load.answers)
    assert during, "no request was made during the outage"
    assert {a.status for a in during} == {503}, "a callback was acknowledged without Kafka"
    assert all(a.retry_after == "1" for a in load.answers if a.status == 503)
    assert any(a.status == 200 and a.started > marks["restarted"] for a in load.answers)
    missing = [e for e in acked if e not in in_kafka]
    assert not missing, f"{len(missing)} acknowledged callbacks are not in Kafka"
    assert any(s == 200 for t, s in load.readiness if t < marks["stop"])
    assert first_down is not None, "/readyz never said not-ready during the outage"
    assert first_down <= lag, f"/readyz noticed the outage only after {first_down:.1f}s"
    assert {s for t, s in ready_during if t >= first_down} == {503}, ready_during
    assert ready_after, "no /readyz poll after recovery"
    assert ready_after[-1] == 200, "/readyz did not follow the broker back"
