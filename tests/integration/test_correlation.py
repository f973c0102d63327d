"""Correlation on a real receiver and broker: callbacks wait only for placements in flight.

The ledger records are written here as the worker writes them (``placing`` before the request,
``done`` with the call id after FoneStorm answered), so each interleaving is forced, not hoped
for: a receiver whose reading of the ledger is held back must not answer from a read older than
the worker's hold, and a worker that does not hold is caught when its ``done`` comes. Two tests
run the real worker: real callbacks racing its ``done``, and its hold measured off the wire.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bridge.contracts.base import utcnow
from bridge.contracts.commands import PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState
from bridge.ingest.correlation import CallCorrelator
from bridge.ingest.ledger_rounds import ledger_follower
from bridge.kafka.topics import TopicWatch
from bridge.obs.metrics import Metrics
from bridge.settings import Settings
from tests.support.bridge_app import BridgeFactory, RunningBridge
from tests.support.callbacks import callback
from tests.support.commands import closed_loop, command
from tests.support.kafka_records import consume_all
from tests.support.servers import metric, wait_ready

pytestmark = pytest.mark.integration

OURS, THEIRS = "+13215551081", "+13215551801"  # the callback() defaults, in E.164


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


class Ledger:
    """Writes ledger entries as the worker does."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer, self._topic = producer, topic

    async def write(
        self,
        command_id: str,
        state: LedgerState,
        *,
        call_id: str | None = None,
        pair: tuple[str, str] = (OURS, THEIRS),
    ) -> None:
        now = utcnow()
        result = None
        if call_id is not None:
            result = PlaceCallResult(
                command_id=command_id, status=ResultStatus.PLACED, call_id=call_id,
                correlation_id=f"corr-{command_id}", attempts=1, received_at=now,
                finished_at=now,
            )  # fmt: skip
        entry = LedgerEntry(
            command_id=command_id, state=state, source="t/0/0", result=result, updated_at=now,
            fonenumber=pair[0], to=pair[1],
        )  # fmt: skip
        await self._producer.send_and_wait(
            self._topic, entry.model_dump_json().encode(), key=command_id.encode()
        )


def _ledger(bridge: RunningBridge, producer: AIOKafkaProducer) -> Ledger:
    return Ledger(producer, bridge.settings.topics.command_ledger)


async def _warm_up(http: aiohttp.ClientSession, bridge: RunningBridge) -> None:
    """One callback first: the producer's first record to a topic waits for its metadata."""
    async with http.post(bridge.callback_url, json=callback()) as response:
        assert response.status == 200


async def _post(http: aiohttp.ClientSession, bridge: RunningBridge, uid: str) -> None:
    async with http.post(bridge.callback_url, json=callback("OUTBOUND", uid=uid)) as response:
        assert response.status == 200, await response.text()


LOOKED_UP = "bridge_callback_correlations_total"
AT_ONCE = f'{LOOKED_UP}{{how="at_once"}}'
MISSED = "bridge_callback_tags_missed_total"


async def _looked_up(http: aiohttp.ClientSession, bridge: RunningBridge) -> dict[str, float]:
    """How the receiver looked up the commands of outbound callbacks so far, by ``how``."""
    hows = ("at_once", "round_trip", "waited", "timed_out", "unavailable")
    return {how: await metric(http, bridge.url, f'{LOOKED_UP}{{how="{how}"}}') for how in hows}


async def _event(bridge: RunningBridge, uid: str, expected: int = 1) -> dict[str, object]:
    settings = bridge.settings
    records = await consume_all(
        settings.kafka.bootstrap_servers, settings.topics.call_events, expected=expected
    )
    events = [json.loads(r.value) for r in records]
    return next(e for e in events if e["call_id"] == uid)


async def test_a_call_not_placed_by_the_bridge_is_not_held(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession, producer: AIOKafkaProducer
) -> None:
    bridge = await start_bridge(callbacks={"allow_unauthenticated": True, "correlation_wait": 5})
    # A placement in flight to *other* numbers must not hold this callback.
    await _ledger(bridge, producer).write("elsewhere", LedgerState.PLACING, pair=(OURS, "+1407"))
    await _warm_up(http, bridge)
    uid = f"not-ours-{uuid.uuid4()}"
    await _post(http, bridge, uid)
    looked_up = await _looked_up(http, bridge)
    assert looked_up["at_once"] + looked_up["round_trip"] == 1, looked_up  # not held
    event = await _event(bridge, uid, expected=2)
    assert event["command_id"] is None
    assert event["correlation_id"] is None


async def _placing_then_callback(
    start_bridge: BridgeFactory,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    command_id: str,
    uid: str,
) -> tuple[RunningBridge, Ledger, asyncio.Task[None]]:
    """A receiver that holds callbacks 5 s at most, ``command_id`` placing a call to our
    numbers on its ledger, and an outbound callback of ``uid`` to our numbers posted to it."""
    bridge = await start_bridge(callbacks={"allow_unauthenticated": True, "correlation_wait": 5})
    ledger = _ledger(bridge, producer)
    await ledger.write(command_id, LedgerState.PLACING)
    return bridge, ledger, asyncio.create_task(_post(http, bridge, uid))


async def test_a_callback_racing_its_done_entry_waits_for_it_and_is_tagged(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession, producer: AIOKafkaProducer
) -> None:
    # FoneStorm's BEGIN overtakes its create-call answer: the callback is held...
    uid = f"raced-{uuid.uuid4()}"
    bridge, ledger, posted = await _placing_then_callback(
        start_bridge, http, producer, "cmd-race", uid
    )
    await asyncio.sleep(0.3)
    assert not posted.done()
    # ...until the worker records the answer, not until the wait runs out.
    await ledger.write("cmd-race", LedgerState.DONE, call_id=uid)
    await posted
    assert (await _looked_up(http, bridge))["timed_out"] == 0
    event = await _event(bridge, uid)
    assert (event["command_id"], event["correlation_id"]) == ("cmd-race", "corr-cmd-race")


async def test_a_held_callback_says_when_it_was_received_not_when_it_was_released(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession, producer: AIOKafkaProducer
) -> None:
    uid = f"held-{uuid.uuid4()}"
    bridge, ledger, posted = await _placing_then_callback(
        start_bridge, http, producer, "cmd-held", uid
    )
    await asyncio.sleep(0.3)
    assert not posted.done()
    released = utcnow()
    await ledger.write("cmd-held", LedgerState.DONE, call_id=uid)
    await posted
    event = await _event(bridge, uid)
    assert datetime.fromisoformat(event["received_at"]) < released


async def test_a_pending_pair_releases_callbacks_of_other_calls_when_it_is_done(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession, producer: AIOKafkaProducer
) -> None:
    uid = f"other-{uuid.uuid4()}"  # same numbers, but a call placed elsewhere
    bridge, ledger, posted = await _placing_then_callback(
        start_bridge, http, producer, "cmd-same-pair", uid
    )
    await asyncio.sleep(0.2)
    await ledger.write("cmd-same-pair", LedgerState.DONE, call_id=f"ours-{uuid.uuid4()}")
    await posted
    assert (await _looked_up(http, bridge))["timed_out"] == 0  # released by the done
    event = await _event(bridge, uid)
    assert event["command_id"] is None  # tagged only on an exact call id match


async def _answered_at_once(http: aiohttp.ClientSession, bridge: RunningBridge) -> int:
    """Callbacks of calls nobody placed until one is answered without a round trip; how many."""
    for posted in range(1, 101):
        await _post(http, bridge, f"nobody-{uuid.uuid4()}")
        if await metric(http, bridge.url, AT_ONCE):
            return posted
        await asyncio.sleep(0.01)
    raise AssertionError("no callback was answered at once")


class LedgerReads:
    """Holds the receiver's reading of the ledger while closed, as a slow read would: its
    correlator's consumers come from :meth:`consumer` (``ledger_follower``'s seam)."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.released.set()
        self._blocked = asyncio.Event()

    def consumer(self, **options: Any) -> AIOKafkaConsumer:
        reads = self

        class Held(AIOKafkaConsumer):  # type: ignore[misc]
            async def getmany(self, *args: Any, **kwargs: Any) -> Any:
                if not reads.released.is_set():
                    reads._blocked.set()
                    await reads.released.wait()
                return await super().getmany(*args, **kwargs)

        return Held(**options)

    async def hold(self) -> asyncio.Event:
        """Hold from the next read on (the one under way returns); set the event to release."""
        self.released.clear()
        await asyncio.wait_for(self._blocked.wait(), 5)
        return self.released


@pytest.fixture
def ledger_reads(monkeypatch: pytest.MonkeyPatch) -> LedgerReads:
    """The receivers the test starts read the ledger through consumers it can hold."""
    reads = LedgerReads()

    def correlator(settings: Settings, metrics: Metrics) -> CallCorrelator:
        follow = ledger_follower(settings, consumer_factory=reads.consumer)
        return CallCorrelator(settings, metrics, follow=follow)

    monkeypatch.setattr("bridge.app.CallCorrelator", correlator)
    return reads


HOLD = 1.0  # long, so the steps below fit inside it on a slow machine


async def _held_back(
    start_bridge: BridgeFactory,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    reads: LedgerReads,
) -> tuple[RunningBridge, Ledger, int, asyncio.Event]:
    """A receiver answering at once (recent rounds), then its reading of the ledger held back.

    Returns the bridge, a ledger writer, the callbacks posted so far and the release.
    """
    callbacks = {"allow_unauthenticated": True, "correlation_wait": 5, "correlation_hold": HOLD}
    bridge = await start_bridge(callbacks=callbacks)
    posted = await _answered_at_once(http, bridge)
    return bridge, _ledger(bridge, producer), posted, await reads.hold()


async def test_a_read_older_than_the_hold_never_answers_a_callback_at_once(
    start_bridge: BridgeFactory,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    ledger_reads: LedgerReads,
) -> None:
    bridge, ledger, posted_before, release = await _held_back(
        start_bridge, http, producer, ledger_reads
    )
    # A worker: placing acknowledged, the hold, then the request; FoneStorm calls back at once.
    await ledger.write("cmd-held", LedgerState.PLACING)
    # Other callbacks meanwhile (sooner than the hold: none can be of that placement); their
    # rounds are answered, but not read up to.
    others = []
    for _ in range(10):
        others.append(asyncio.create_task(_post(http, bridge, f"other-{uuid.uuid4()}")))
        await asyncio.sleep(HOLD / 10)
    uid = f"held-{uuid.uuid4()}"
    posted = asyncio.create_task(_post(http, bridge, uid))
    await asyncio.sleep(0.3)
    # The receiver's read predates the placement by more than the hold: it may not answer...
    assert not posted.done()
    release.set()
    await asyncio.sleep(0.3)
    assert not posted.done()  # ...and once read, the placement holds the callback
    await ledger.write("cmd-held", LedgerState.DONE, call_id=uid)
    await asyncio.gather(posted, *others)
    event = await _event(bridge, uid, expected=posted_before + len(others) + 1)
    assert (event["command_id"], event["correlation_id"]) == ("cmd-held", "corr-cmd-held")
    assert await metric(http, bridge.url, MISSED) == 0


async def test_a_callback_sooner_than_the_hold_may_miss_its_tag_and_is_counted(
    start_bridge: BridgeFactory,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    ledger_reads: LedgerReads,
) -> None:
    bridge, ledger, posted_before, release = await _held_back(
        start_bridge, http, producer, ledger_reads
    )
    # A worker that does not hold (an older version, or a shorter setting): FoneStorm's
    # callback comes before this receiver has read the placement.
    await ledger.write("cmd-hasty", LedgerState.PLACING)
    uid = f"hasty-{uuid.uuid4()}"
    await _post(http, bridge, uid)
    release.set()
    await ledger.write("cmd-hasty", LedgerState.DONE, call_id=uid)
    for _ in range(100):
        if await metric(http, bridge.url, MISSED):
            break
        await asyncio.sleep(0.05)
    assert await metric(http, bridge.url, MISSED) == 1
    event = await _event(bridge, uid, expected=posted_before + 1)
    assert event["command_id"] is None


async def test_a_receiver_started_after_the_placement_still_tags_it(
    start_bridge: BridgeFactory,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
) -> None:
    first = await start_bridge()
    ledger = _ledger(first, producer)
    uid = f"before-{uuid.uuid4()}"
    await ledger.write("cmd-before", LedgerState.PLACING)
    await ledger.write("cmd-before", LedgerState.DONE, call_id=uid)
    later = await start_bridge(topics=first.settings.topics.model_dump())
    await _warm_up(http, later)
    await _post(http, later, uid)
    # Known from the ledger's look-back: tagged without looking anything up.
    assert sum((await _looked_up(http, later)).values()) == 0
    event = await _event(later, uid, expected=2)
    assert (event["command_id"], event["correlation_id"]) == ("cmd-before", "corr-cmd-before")


async def test_a_receiver_is_not_ready_before_it_knows_whether_the_ledger_exists(
    start_bridge: BridgeFactory,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await start_bridge()
    uid = f"before-{uuid.uuid4()}"
    await _ledger(first, producer).write("cmd-before", LedgerState.PLACING)
    await _ledger(first, producer).write("cmd-before", LedgerState.DONE, call_id=uid)
    # The correlator's check of the ledger topic is held (a slow or failing first check), while
    # the producer and the receiver's own topics are fine.
    checking, release = asyncio.Event(), asyncio.Event()

    class HeldWatch(TopicWatch):
        async def wait(self) -> None:
            checking.set()
            await release.wait()
            await super().wait()

    monkeypatch.setattr("bridge.ingest.correlation.TopicWatch", HeldWatch)
    later = await start_bridge(ready=False, topics=first.settings.topics.model_dump())
    await asyncio.wait_for(checking.wait(), 10)
    while True:
        async with http.get(f"{later.url}/readyz") as response:
            status, checks = response.status, (await response.json())["checks"]
        if checks["kafka"] and checks["topics"]:
            break
        await asyncio.sleep(0.05)
    # Ready now, a callback of the call placed before would go out untagged.
    assert (status, checks["correlation"]) == (503, False)
    release.set()
    await wait_ready(later.url)
    await _post(http, later, uid)
    event = await _event(later, uid)
    assert (event["command_id"], event["correlation_id"]) == ("cmd-before", "corr-cmd-before")


@pytest.mark.timeout(120)
async def test_real_callbacks_overtaking_the_create_call_answer_are_all_tagged(
    start_bridge: BridgeFactory,
) -> None:
    # The sandbox calls back at once but answers create-call 300 ms later: every BEGIN arrives
    # before the worker knows the call id, and must wait for the ledger's done.
    commands = 20
    async with closed_loop(
        start_bridge, sandbox={"ring_delay": 0.0, "latency": 0.3, "call_duration": 0.05}
    ) as loop:
        sent = [
            command(f"race-{n}-{uuid.uuid4()}", correlation_id=f"c-{n}") for n in range(commands)
        ]
        await loop.send(*sent)
        records = await loop.events(3 * commands, timeout=60)
        events = [json.loads(r.value) for r in records if b'"status"' in r.value]
    expected = {c.command_id: c.correlation_id for c in sent}
    assert len(events) == 2 * commands
    untagged = [e for e in events if e["command_id"] not in expected]
    assert not untagged, untagged[:3]
    assert all(e["correlation_id"] == expected[e["command_id"]] for e in events)


async def _placed_with_hold(
    start_bridge: BridgeFactory, hold: float, count: int, **overrides: Any
) -> tuple[dict[str, float], dict[str, float]]:
    """Place ``count`` commands through the real worker: when (s since the epoch) each one's
    ``placing`` was written and its call created, by command id."""
    async with closed_loop(start_bridge, callbacks={"correlation_hold": hold}, **overrides) as loop:
        sent = [command(f"hold-{n}-{uuid.uuid4()}") for n in range(count)]
        await loop.send(*sent)
        assert len(await loop.results(len(sent))) == len(sent)
        records = await consume_all(
            loop.settings.kafka.bootstrap_servers,
            loop.settings.topics.command_ledger,
            expected=2 * len(sent),
        )
        created = {
            c.idempotency_key: c.created_at.timestamp() for c in loop.sandbox.state.calls.values()
        }
    placing = {
        entry.command_id: record.timestamp / 1000  # whole milliseconds, truncated
        for record in records
        if (entry := LedgerEntry.model_validate_json(record.value)).state is LedgerState.PLACING
    }
    assert set(placing) == set(created) == {c.command_id for c in sent}
    return placing, created


async def test_workers_send_the_request_a_hold_after_placing(start_bridge: BridgeFactory) -> None:
    # What the receivers count on: the create-call request reaches FoneStorm no sooner than
    # BRIDGE_CALLBACKS__CORRELATION_HOLD after the placing entry was written.
    hold = 0.2
    placing, created = await _placed_with_hold(start_bridge, hold, 3)
    for command_id, written in placing.items():
        assert created[command_id] - written >= hold - 0.001, command_id


async def test_commands_in_their_hold_leave_their_slot_to_others(
    start_bridge: BridgeFactory,
) -> None:
    # One command in flight, a long hold: the second command starts while the first waits
    # out its hold (the hold costs latency, not throughput), and no third while both hold
    # (as many again as BRIDGE_WORKER__MAX_IN_FLIGHT at most).
    placing, created = await _placed_with_hold(start_bridge, 0.5, 3, worker={"max_in_flight": 1})
    written, first_call = sorted(placing.values()), min(created.values())
    assert written[1] < first_call  # started during the first one's hold
    assert written[2] >= first_call - 0.001  # not before a slot was free again (ms stamps)
