"""`fonestorm-bridge dead-letters list|show|replay` against a real broker: dead letters made by
the receiver and the worker (or, for "valid since an upgrade", written as an older release
would have), replayed into events and commands once, however often the replay runs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from bridge.contracts.calls import CallStatus, Direction, call_event_id
from bridge.contracts.dead_letters import DeadLetter, KafkaRecordRef
from bridge.dead_letters.replayer import transactional_id
from bridge.kafka.cloudevents import format_time
from tests.support.bridge_app import BridgeFactory, RunningBridge
from tests.support.callbacks import callback, post_json
from tests.support.commands import closed_loop, command
from tests.support.dead_letters import (
    refused_callback,
    tool,
    with_replay_topic,
    write_dead_letters,
)
from tests.support.kafka_broker import NewTopicFactory
from tests.support.kafka_records import consume_all, headers_of, read_to_end
from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.integration

REPLAYED_FROM = "bridge_replayed_from"
OLDER = "disposition: unknown disposition (refused by an older release)"


async def post_bad_callbacks(http: aiohttp.ClientSession, bridge: RunningBridge) -> None:
    """Three refusals, the real way: two invalid_fields and one malformed_body."""
    no_disposition = callback(status="END")
    del no_disposition["disposition"]
    unknown = callback(status="END", disposition="VOICEMAIL")
    for data in (no_disposition, unknown):
        status, _ = await post_json(http, bridge.url, data)
        assert status == 422
    async with http.post(
        bridge.callback_url, data=b'{"uid": ', headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400


async def test_list_filters_and_show(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession, new_topic: NewTopicFactory
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    bridge = await start_bridge()
    settings = await with_replay_topic(bridge.settings, new_topic)
    await post_bad_callbacks(http, bridge)
    records = await consume_all(
        settings.kafka.bootstrap_servers, settings.topics.dead_letters, expected=3
    )
    letters = {json.loads(r.value)["reason_code"]: json.loads(r.value) for r in records}
    assert len(records) == 3
    malformed = letters["malformed_body"]

    code, out, _ = await tool(settings, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "RECEIVED", "(UTC)"]
    assert lines[-1] == "3 dead letters"
    assert all(json.loads(r.value)["dead_letter_id"] in out for r in records)
    received = [line.split()[1] + line.split()[2] for line in lines[1:-1]]
    assert received == sorted(received), "newest last"

    code, out, _ = await tool(settings, "list", "--reason", "invalid_fields", "--since", "1h")
    assert (code, out.splitlines()[-1]) == (0, "2 dead letters")
    assert malformed["dead_letter_id"] not in out
    code, out, _ = await tool(settings, "list", "--source", "command")
    assert out.splitlines() == [out.splitlines()[0], "0 dead letters"]
    code, out, _ = await tool(settings, "list", "--until", before.isoformat())
    assert out.splitlines()[-1] == "0 dead letters"
    code, out, _ = await tool(settings, "list", "--json", "--reason", "malformed_body")
    (line,) = out.splitlines()
    assert json.loads(line)["dead_letter"] == malformed
    assert json.loads(line)["replay"] is None

    code, out, _ = await tool(settings, "show", malformed["dead_letter_id"][:13])
    assert code == 0
    assert f"dead letter {malformed['dead_letter_id']}" in out
    assert '"reason_code": "malformed_body"' in out
    assert "body (8 bytes, utf-8 in the record):" in out
    assert '{"uid": ' in out
    assert "replay: never replayed" in out

    code, _, err = await tool(settings, "show", str(uuid.uuid4()))
    assert code == 1
    assert "no dead letter" in err


async def test_replay_callbacks_once(
    start_bridge: BridgeFactory,
    http: aiohttp.ClientSession,
    new_topic: NewTopicFactory,
    tmp_path: Path,
) -> None:
    bridge = await start_bridge()
    settings = await with_replay_topic(bridge.settings, new_topic)
    kafka, topics = settings.kafka.bootstrap_servers, settings.topics
    still_invalid = callback(status="END", disposition="VOICEMAIL")
    assert (await post_json(http, bridge.url, still_invalid))[0] == 422
    data = callback(direction="OUTBOUND", status="END", disposition="FAILED:503")
    received_at = datetime.now(UTC) - timedelta(minutes=10)
    valid_now = refused_callback(data, received_at=received_at, reason=OLDER)
    await write_dead_letters(settings, valid_now)
    assert len(await consume_all(kafka, topics.dead_letters, expected=2)) == 2

    code, out, _ = await tool(settings, "replay", "--dry-run")
    assert code == 0
    assert f"would replay     {valid_now.dead_letter_id}" in out
    assert "dry run, nothing produced: 2 dead letters read" in out
    assert await read_to_end(kafka, topics.call_events) == []
    assert await read_to_end(kafka, topics.dead_letter_replays) == []

    metrics = tmp_path / "replay.prom"
    code, out, _ = await tool(settings, "replay", "--metrics-file", str(metrics))
    assert code == 0, out
    assert "replay finished: 2 dead letters read" in out
    assert "  replayed              1  (callback 1)" in out
    assert "  still invalid         1  (callback 1)" in out
    assert "invalid_fields 1, e.g." in out
    assert "unknown disposition 'VOICEMAIL'" in out

    (event,) = await read_to_end(kafka, topics.call_events)
    value = json.loads(event.value)
    expected_id = call_event_id(data["uid"], Direction.OUTBOUND, CallStatus.END)
    assert value["event_id"] == expected_id
    assert value["call_id"] == data["uid"] == event.key.decode()
    assert datetime.fromisoformat(value["received_at"]) == received_at
    assert (value["disposition"], value["failure_code"]) == ("FAILED", "503")
    headers = headers_of(event)
    assert headers[REPLAYED_FROM] == valid_now.dead_letter_id
    assert headers["ce_id"] == expected_id
    assert headers["ce_time"] == format_time(received_at)
    assert headers["ce_type"] == "com.fonestorm.call.end"
    # The receiver gives the very same callback the same event id.
    status, answer = await post_json(http, bridge.url, data)
    assert (status, answer) == (200, {"event_id": expected_id, "call_id": data["uid"]})

    replays = {
        r.key.decode(): json.loads(r.value)
        for r in await read_to_end(kafka, topics.dead_letter_replays)
    }
    assert replays[valid_now.dead_letter_id]["outcome"] == "replayed"
    assert replays[valid_now.dead_letter_id]["produced_to"]["topic"] == topics.call_events
    (other,) = (r for key, r in replays.items() if key != valid_now.dead_letter_id)
    assert (other["outcome"], other["reason_code"]) == ("still_invalid", "invalid_fields")

    code, out, _ = await tool(settings, "replay", "--metrics-file", str(metrics), "-v")
    assert code == 0
    assert f"already replayed {valid_now.dead_letter_id}" in out
    assert "  replayed              0" in out
    assert "  already replayed      1  (callback 1)" in out
    assert "  still invalid         1  (callback 1)" in out
    assert len(await read_to_end(kafka, topics.call_events)) == 2  # + the one posted above
    text = metrics.read_text()
    assert 'bridge_dead_letter_replays_total{source="callback",outcome="replayed"} 1' in text
    assert 'bridge_dead_letter_replays_total{source="callback",outcome="still_invalid"} 2' in text
    assert (
        'bridge_dead_letter_replays_total{source="callback",outcome="already_replayed"} 1' in text
    )
    assert "bridge_dead_letter_replay_last_run_success 1" in text

    code, out, _ = await tool(settings, "list")
    row = next(line for line in out.splitlines() if valid_now.dead_letter_id in line)
    assert " replayed " in row
    code, out, _ = await tool(settings, "show", valid_now.dead_letter_id)
    assert "replay: replayed at " in out
    assert f"to {topics.call_events}[" in out


async def test_a_replay_that_died_mid_batch_is_done_again_once(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    bridge = await start_bridge()
    settings = await with_replay_topic(bridge.settings, new_topic)
    kafka, topics = settings.kafka.bootstrap_servers, settings.topics
    letter = refused_callback(callback(status="BEGIN"), reason=OLDER)
    await write_dead_letters(settings, letter)

    # A replay that wrote its batch (the event and the replay record) and died before the commit.
    crashed = AIOKafkaProducer(bootstrap_servers=kafka, transactional_id=transactional_id(settings))
    await crashed.start()
    try:
        await crashed.begin_transaction()
        record = {"dead_letter_id": letter.dead_letter_id, "outcome": "replayed",
                  "replayed_at": datetime.now(UTC).isoformat()}  # fmt: skip
        await (await crashed.send(topics.call_events, b"{}", key=b"half-done"))
        await (
            await crashed.send(
                topics.dead_letter_replays,
                json.dumps(record).encode(),
                key=letter.dead_letter_id.encode(),
            )
        )
        # The next replay fences it (aborting its batch) before it reads the replay topic.
        code, out, _ = await tool(settings, "replay")
    finally:
        with contextlib.suppress(KafkaError):
            await crashed.stop()
    assert code == 0, out
    assert "  replayed              1  (callback 1)" in out
    (event,) = await read_to_end(kafka, topics.call_events)  # read_committed: not "half-done"
    assert headers_of(event)[REPLAYED_FROM] == letter.dead_letter_id
    code, out, _ = await tool(settings, "replay")
    assert "  already replayed      1  (callback 1)" in out


async def test_replay_of_a_command_places_it_once(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    async with closed_loop(start_bridge) as loop:
        settings = await with_replay_topic(loop.settings, new_topic)
        kafka, topics = settings.kafka.bootstrap_servers, settings.topics
        fixed = command(f"fixed-{uuid.uuid4()}", correlation_id="appointment-9")
        broken = fixed.model_dump(mode="json", exclude_none=True)
        del broken["to"]
        await loop.send(json.dumps(broken).encode(), key=fixed.command_id.encode())
        (refused,) = await loop.dead_letters(1)
        assert refused["reason_code"] == "invalid_command"
        premium = command(f"premium-{uuid.uuid4()}", to="+1 900 555 0199")
        await loop.send(premium)
        assert [r["status"] for r in await loop.results(2)] == ["rejected", "rejected"]

        # The unreadable command's record as a dead letter, with the value an operator (or a
        # fixed producer) would have sent: the worker never placed this id, so it places it now.
        record = KafkaRecordRef.model_validate(
            refused["record"] | {"value": fixed.model_dump_json()}
        )
        repaired = DeadLetter.model_validate(
            refused | {"dead_letter_id": str(uuid.uuid4()), "record": record}
        )
        await write_dead_letters(settings, repaired)
        assert len(await loop.dead_letters(3)) == 3

        for run in range(2):
            code, out, _ = await tool(settings, "replay", "--source", "command", "-v")
            assert code == 0, out
            if run == 0:
                assert f"replayed         {repaired.dead_letter_id}" in out
                assert "  replayed              1  (command 1)" in out
            else:
                assert f"already replayed {repaired.dead_letter_id}" in out
                assert "  already replayed      1  (command 1)" in out
            assert "  still invalid         2  (command 2)" in out
            assert "now invalid_command: to: Field required" in out
            # Refused by the allow-lists: the worker remembers it finished, and would only
            # answer `duplicate`; it stays a dead letter.
            assert f"now already_finished: the worker finished command {premium.command_id}" in out

        results = await loop.results(3)
        assert [r["status"] for r in results] == ["rejected", "rejected", "placed"]
        assert loop.calls_per_command() == {fixed.command_id: 1}
        commands = await read_to_end(kafka, topics.place_call)
        replayed = [r for r in commands if REPLAYED_FROM in headers_of(r)]
        assert len(replayed) == 1
        assert replayed[0].key == fixed.command_id.encode()
        assert headers_of(replayed[0])[REPLAYED_FROM] == repaired.dead_letter_id
        assert json.loads(replayed[0].value) == json.loads(fixed.model_dump_json())

        # A callback of that call, refused by an older release, comes back tagged with the
        # command that placed the call, as the receiver's event would have been.
        call_id = results[-1]["call_id"]
        end = callback(direction="OUTBOUND", status="END", uid=call_id, to=fixed.to)
        await write_dead_letters(settings, refused_callback(end, reason=OLDER))
        code, out, _ = await tool(settings, "replay", "--source", "callback")
        assert "  replayed              1  (callback 1)" in out
        events = await read_to_end(kafka, topics.call_events)
        (event,) = (e for e in events if REPLAYED_FROM in headers_of(e))
        value = json.loads(event.value)
        assert (value["call_id"], value["command_id"], value["correlation_id"]) == (
            call_id,
            fixed.command_id,
            "appointment-9",
        )


async def test_replay_needs_its_topic_and_says_so(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    bridge = await start_bridge()
    topics = bridge.settings.topics.model_copy(
        update={"dead_letter_replays": f"missing-{uuid.uuid4().hex[:12]}"}
    )
    settings = bridge.settings.model_copy(update={"topics": topics})
    code, out, err = await tool(settings, "replay")
    assert code == 1
    assert f"the replay topic {topics.dead_letter_replays} does not exist" in err
    code, out, err = await tool(settings, "replay", "--dry-run")
    assert (code, out.splitlines()[0]) == (0, "dry run, nothing produced: 0 dead letters read")


def test_the_command_line_reads_settings_from_the_environment(kafka_bootstrap: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env |= {
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BRIDGE_TOPICS__DEAD_LETTERS": f"missing-{uuid.uuid4().hex[:12]}",
        "BRIDGE_LOG__LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "bridge.cli", "dead-letters"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv, *args],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    missing = run("list")
    assert missing.returncode == 1
    assert f"topic {env['BRIDGE_TOPICS__DEAD_LETTERS']} does not exist" in missing.stderr
    bad = run("replay", "--since", "yesterday")
    assert bad.returncode == 2
    assert "'yesterday' is neither a duration" in bad.stderr
    backwards = run("list", "--since", "1h", "--until", "2h")
    assert (backwards.returncode, backwards.stderr.strip()) == (
        2,
        "fonestorm-bridge: --since is after --until",
    )
