"""`dead-letters replay` when the broker freezes (SIGSTOP) or is fenced.

Runs on a broker of its own (fixtures ``dedicated_broker``, ``fenceable_broker``), never the
session one. Frozen after the replay has read everything and decided its batch, before it
writes it, the broker must not keep the replay waiting for ever: it stops with exit status 1
(a batch not committed); thawed, the next run does the batch, once.

Fenced (Kafka names no live broker, as right after a thaw until the broker registers again)
from when the replay has checked its topics, before its producer starts: the replay waits for
a live broker as long as its Kafka request timeout, then stops with one line and exit status 1;
served again meanwhile, it replays.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from bridge.dead_letters import replayer
from bridge.dead_letters.replayer import Replayer
from bridge.kafka.topics import ensure_topics
from bridge.settings import Settings
from tests.support.bridge_app import CALLBACK_SIGNING_KEY, COMMAND_SIGNING_KEY
from tests.support.callbacks import callback
from tests.support.dead_letters import refused_callback, tool, write_dead_letters
from tests.support.dedicated_broker import Broker, FenceableBroker
from tests.support.kafka_records import headers_of, read_to_end
from tests.support.waiting import eventually
from tools.local_kafka.paths import state_root

pytestmark = [pytest.mark.integration, pytest.mark.fault]


TOPICS = (
    "call_events", "dead_letters", "dead_letter_replays", "dead_letter_audit", "place_call",
    "command_ledger",
)  # fmt: skip


def replay_settings(broker: Broker) -> Settings:
    prefix = "dlr"
    return Settings.model_validate(
        {
            "kafka": {
                "bootstrap_servers": broker.bootstrap,
                "produce_timeout": 1.0,
                "request_timeout_ms": 3000,
                "create_topics": True,
                "topic_partitions": 1,
            },
            "topics": {name: f"{prefix}.{name}" for name in TOPICS},
            "dead_letters": {
                "callback_signing_key": CALLBACK_SIGNING_KEY.decode(),
                "command_signing_key": COMMAND_SIGNING_KEY.decode(),
            },
        }
    )


@pytest.fixture
def broker_pid(dedicated_broker: Broker) -> Iterator[int]:
    """The broker's process id; thawed at the end whatever the test did."""
    pid = int((state_root() / dedicated_broker.name / "kafka.pid").read_text().strip())
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.timeout(300)
async def test_a_broker_frozen_mid_batch_stops_the_replay(
    dedicated_broker: Broker, broker_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = replay_settings(dedicated_broker)
    kafka, topics = settings.kafka.bootstrap_servers, settings.topics
    await ensure_topics(settings, [topics.dead_letters, topics.call_events])
    letter = refused_callback(callback(status="BEGIN"), reason="refused by an older release")
    await write_dead_letters(settings, letter)

    write = Replayer._write

    async def frozen_first(self: Replayer, *args: object, **kwargs: object) -> object:
        os.kill(broker_pid, signal.SIGSTOP)
        return await write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Replayer, "_write", frozen_first)
    code, out, err = await tool(settings, "replay")
    os.kill(broker_pid, signal.SIGCONT)
    monkeypatch.undo()
    assert code == 1, out
    assert "a batch of 1 dead letters was not committed" in err

    async def serving() -> bool:
        return (await tool(settings, "list"))[0] == 0

    await eventually(serving, "the thawed broker", 60)
    code, out, err = await tool(settings, "replay")
    assert code == 0, err
    assert "  replayed              1  (callback 1)" in out
    (event,) = await read_to_end(kafka, topics.call_events)
    assert headers_of(event)["bridge_replayed_from"] == letter.dead_letter_id


@pytest.mark.timeout(300)
async def test_the_tool_started_on_a_fenced_broker_waits_for_a_live_one(
    fenceable_broker: FenceableBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = fenceable_broker
    settings = replay_settings(broker)
    kafka, topics = settings.kafka.bootstrap_servers, settings.topics
    # Long enough for the broker to register again once the tool waits for it.
    patient = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"request_timeout_ms": 60_000})}
    )
    await ensure_topics(settings, [topics.dead_letters, topics.call_events])
    letter = refused_callback(callback(status="BEGIN"), reason="refused by an older release")
    await write_dead_letters(settings, letter)
    checked = replayer.ensure_topics

    async def then_fenced(*args: object) -> None:
        await checked(*args)  # type: ignore[arg-type]
        await broker.fence()

    monkeypatch.setattr(replayer, "ensure_topics", then_fenced)
    # Fenced from before its producer starts, for longer than the replay waits.
    code, out, err = await tool(settings, "replay")
    assert code == 1, out
    [line] = err.splitlines()
    assert line.startswith("fonestorm-bridge: replay stopped: ")
    assert "Kafka named no live broker within 3s" in line
    assert line.endswith("nothing was replayed, run the replay again")

    # Still fenced when `list` starts; live again while it waits.
    with broker.unfenced_when_waited_for():
        code, out, err = await tool(patient, "list")
    assert code == 0, err
    assert letter.dead_letter_id in out

    # Fenced again before the producer starts; live again while the replay waits.
    with broker.unfenced_when_waited_for():
        code, out, err = await tool(patient, "replay")
    assert code == 0, err
    assert "  replayed              1  (callback 1)" in out
    (event,) = await read_to_end(kafka, topics.call_events)
    assert headers_of(event)["bridge_replayed_from"] == letter.dead_letter_id
