"""`dead-letters replay` when the broker freezes (SIGSTOP) while a batch is being written.

Runs on a dedicated broker (the ``dedicated_broker`` fixture), never the session one. The
broker is frozen at a known point: after the replay has read everything and decided its batch,
before it writes it. The replay must then stop with exit status 1 (a batch not committed),
not wait for the broker for ever; thawed, the next run does the batch, once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest

from bridge.dead_letters.replayer import Replayer
from bridge.kafka.topics import ensure_topics
from bridge.settings import Settings
from tests.support.bridge_app import CALLBACK_SIGNING_KEY, COMMAND_SIGNING_KEY
from tests.support.callbacks import callback
from tests.support.dead_letters import refused_callback, tool, write_dead_letters
from tests.support.dedicated_broker import Broker
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
        # Thawed, the broker is fenced until it is registered again: aiokafka then fails
        # (even with an AssertionError) until it serves partitions.
        with contextlib.suppress(AssertionError):
            return (await tool(settings, "list"))[0] == 0
        return False

    await eventually(serving, "the thawed broker", 60)
    code, out, err = await tool(settings, "replay")
    assert code == 0, err
    assert "  replayed              1  (callback 1)" in out
    (event,) = await read_to_end(kafka, topics.call_events)
    assert headers_of(event)["bridge_replayed_from"] == letter.dead_letter_id
