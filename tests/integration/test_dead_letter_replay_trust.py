"""`dead-letters replay` trusts nothing on the dead-letter topic but what the bridge signed, and
rebuilds what it writes; `list` and `show` print a hostile dead letter without its controls.

Forgeries are written with a plain aiokafka producer, as anyone with WRITE on the topic (the
internet-facing receiver's principal, say) could; the real replay command runs against them.
"""

from __future__ import annotations

import getpass
import json
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bridge.contracts.dead_letters import DeadLetter
from bridge.contracts.signing import SIGNATURE_HEADER, verify
from bridge.settings import Settings
from tests.support.bridge_app import CALLBACK_SIGNING_KEY, COMMAND_SIGNING_KEY, BridgeFactory
from tests.support.callbacks import callback, post_json
from tests.support.commands import closed_loop, command
from tests.support.dead_letters import (
    produce,
    refused_callback,
    refused_command,
    signed,
    tool,
    with_replay_topic,
)
from tests.support.kafka_broker import NewTopicFactory
from tests.support.kafka_records import consume_all, headers_of, read_to_end

pytestmark = pytest.mark.integration

REPLAYED_FROM = "bridge_replayed_from"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ESCAPED = {"Cc", "Cf", "Cs", "Zl", "Zp"}


async def audit_of(settings: Settings) -> list[dict[str, Any]]:
    records = await read_to_end(settings.kafka.bootstrap_servers, settings.topics.dead_letter_audit)
    return [json.loads(r.value) for r in records]


async def test_the_bridge_signs_the_dead_letters_it_writes(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    async with closed_loop(start_bridge) as loop:
        kafka, topics = loop.settings.kafka.bootstrap_servers, loop.settings.topics
        refused = callback(status="END", disposition="VOICEMAIL")
        assert (await post_json(http, loop.bridge.url, refused))[0] == 422
        await loop.send(b'{"command_id": "c-broken"', key=b"c-broken")
        records = await consume_all(kafka, topics.dead_letters, expected=2)
        assert len(records) == 2
        by_source = {json.loads(r.value)["source"]: r for r in records}
        for source, key, other in [
            ("callback", CALLBACK_SIGNING_KEY, COMMAND_SIGNING_KEY),
            ("command", COMMAND_SIGNING_KEY, CALLBACK_SIGNING_KEY),
        ]:
            dead = by_source[source]
            (signature,) = (v for name, v in dead.headers if name == SIGNATURE_HEADER)
            assert verify(key, dead.value, signature), source
            assert not verify(other, dead.value, signature), source
        (command_record,) = await read_to_end(kafka, topics.place_call)
        kept = json.loads(by_source["command"].value)["record"]["timestamp"]
        assert datetime.fromisoformat(kept) == datetime.fromtimestamp(
            command_record.timestamp / 1000, UTC
        )


async def test_forged_dead_letters_are_refused_and_audited(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    bridge = await start_bridge()
    settings = await with_replay_topic(bridge.settings, new_topic)
    kafka, topics = settings.kafka.bootstrap_servers, settings.topics
    written = datetime.now(UTC) - timedelta(minutes=5)

    def forged_command(name: str) -> DeadLetter:
        value = {"command_id": f"{name}-{uuid.uuid4()}", "fonenumber": "3215551081",
                 "to": "+19005550199"}  # fmt: skip
        return refused_command(value, written=written)

    unsigned, wrong_key, receivers_key = (
        forged_command(name) for name in ("unsigned", "wrong-key", "receivers-key")
    )
    unsigned_callback = refused_callback(callback(status="BEGIN"))
    await produce(
        settings,
        topics.dead_letters,
        signed(unsigned),
        signed(wrong_key, b"w" * 32),
        # What a receiver taken over could sign: it holds the callback key only.
        signed(receivers_key, CALLBACK_SIGNING_KEY),
        signed(unsigned_callback),
    )

    code, out, _ = await tool(settings, "replay", "-v")
    assert code == 0, out
    assert "  replayed              0" in out
    assert "  still invalid         4  (callback 1, command 3)" in out
    assert f"{unsigned.dead_letter_id}  command  fonenumber_not_allowed  now unsigned:" in out
    assert f"{wrong_key.dead_letter_id}  command  fonenumber_not_allowed  now bad_signature:" in out
    assert (
        f"{receivers_key.dead_letter_id}  command  fonenumber_not_allowed  now bad_signature:"
        in out
    )
    assert f"{unsigned_callback.dead_letter_id}  callback invalid_fields  now unsigned:" in out
    assert await read_to_end(kafka, topics.place_call) == []
    assert await read_to_end(kafka, topics.call_events) == []
    audit = {a["dead_letter_id"]: a for a in await audit_of(settings)}
    assert {k: (a["outcome"], a["integrity"], a["reason_code"]) for k, a in audit.items()} == {
        unsigned.dead_letter_id: ("still_invalid", "unsigned", "unsigned"),
        wrong_key.dead_letter_id: ("still_invalid", "bad_signature", "bad_signature"),
        receivers_key.dead_letter_id: ("still_invalid", "bad_signature", "bad_signature"),
        unsigned_callback.dead_letter_id: ("still_invalid", "unsigned", "unsigned"),
    }

    # The operator's explicit flag lets unsigned dead letters through; never a bad signature.
    code, out, _ = await tool(settings, "replay", "-v", "--allow-unsigned")
    assert code == 0, out
    assert "  replayed              2  (callback 1, command 1)" in out
    assert "  still invalid         2  (command 2)" in out
    (replayed_command,) = await read_to_end(kafka, topics.place_call)
    assert unsigned.record is not None
    assert unsigned.record.value is not None
    assert replayed_command.key == json.loads(unsigned.record.value)["command_id"].encode()
    assert len(await read_to_end(kafka, topics.call_events)) == 1
    second_run = (await audit_of(settings))[4:]
    assert sorted((a["outcome"], a["integrity"], a["allow_unsigned"]) for a in second_run) == [
        ("replayed", "unsigned", True),
        ("replayed", "unsigned", True),
        ("still_invalid", "bad_signature", True),
        ("still_invalid", "bad_signature", True),
    ]


async def test_a_signed_command_is_rebuilt_and_keeps_its_time(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    day = 86400.0
    # The worker remembers command ids for a day; the replay is run with a week's retention
    # (as if from another configuration), so only the worker's own guard can stop the command.
    async with closed_loop(start_bridge, worker={"ledger_retention": day}) as loop:
        settings = await with_replay_topic(loop.settings, new_topic)
        settings = settings.model_copy(
            update={"worker": settings.worker.model_copy(update={"ledger_retention": 7 * day})}
        )
        kafka, topics = settings.kafka.bootstrap_servers, settings.topics
        now = datetime.now(UTC).replace(microsecond=0)
        two_days_ago, nine_days_ago = now - timedelta(days=2), now - timedelta(days=9)
        stale = command(f"stale-{uuid.uuid4()}")
        value = stale.model_dump(mode="json") | {"smuggled": "\u001b[2J"}
        letter = refused_command(
            value,
            written=two_days_ago,
            key="not-the-command-id",
            ce_id="ce-1",
            ce_type="com.fonestorm.bridge.place-call",
            traceparent=TRACEPARENT,
            **{"x-evil": "1", REPLAYED_FROM: "older", "bridge_signature": "hmac-sha256=00"},
        )
        ancient = refused_command(
            command(f"ancient-{uuid.uuid4()}").model_dump(mode="json"), written=nine_days_ago
        )
        await produce(
            settings,
            topics.dead_letters,
            signed(letter, COMMAND_SIGNING_KEY),
            signed(ancient, COMMAND_SIGNING_KEY),
        )

        code, out, _ = await tool(settings, "replay", "-v")
        assert code == 0, out
        assert f"replayed         {letter.dead_letter_id}" in out
        assert f"{ancient.dead_letter_id}  command  fonenumber_not_allowed  now too_old:" in out

        (replayed,) = await read_to_end(kafka, topics.place_call)
        assert replayed.key == stale.command_id.encode()
        assert headers_of(replayed) == {
            "traceparent": TRACEPARENT,
            REPLAYED_FROM: letter.dead_letter_id,
        }
        assert (replayed.timestamp, replayed.timestamp_type) == (
            int(two_days_ago.timestamp() * 1000),
            0,
        )
        assert json.loads(replayed.value) == stale.model_dump(mode="json")

        # The worker judges it by when it was first written: too old for its ledger, no call.
        (result,) = await loop.results(1)
        assert (result["command_id"], result["status"], result["error_code"]) == (
            stale.command_id,
            "expired",
            "too_old",
        )
        assert loop.calls_per_command() == {}

        audit = {a["dead_letter_id"]: a for a in await audit_of(settings)}
        done = audit[letter.dead_letter_id]
        assert (done["outcome"], done["integrity"], done["key"]) == (
            "replayed",
            "signed",
            stale.command_id,
        )
        assert done["produced_to"] == {
            "topic": topics.place_call,
            "partition": replayed.partition,
            "offset": replayed.offset,
        }
        assert done["dead_letter"]["topic"] == topics.dead_letters
        assert done["operator"]["user"] == getpass.getuser()
        assert done["what"] == f"command {stale.command_id}"
        assert audit[ancient.dead_letter_id]["reason_code"] == "too_old"


CLEAR = "\x1b[2J\x1b[H"
OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"  # puts `rm -rf ~` on the clipboard
HOSTILE = f"321555{CLEAR}{OSC52}\x9b31m\u202egpj.exe\u2066\u200b\x85\u2028"


def unprintable(text: str) -> list[str]:
    return [c for c in text if c != "\n" and unicodedata.category(c) in ESCAPED]


async def test_list_and_show_print_no_control_characters(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession, new_topic: NewTopicFactory
) -> None:
    bridge = await start_bridge()
    settings = await with_replay_topic(bridge.settings, new_topic)
    # A caller ID is the caller's to choose; the receiver keeps the raw query.
    from_ = "".join(f"%{b:02X}" for b in HOSTILE.encode())
    url = (
        f"{bridge.callback_url}?uid=c-1&direction=INBOUND&status=BEGIN&from={from_}&to=1&type=VOICE"
    )
    async with http.get(url) as response:
        assert response.status == 422
    forged = refused_callback(callback(status="BEGIN", **{"from": HOSTILE}))
    assert forged.request is not None
    forged = forged.model_copy(
        update={
            "reason": f"{HOSTILE}\nreplay: replayed",
            "reason_code": f"x{CLEAR}",
            "request": forged.request.model_copy(
                update={"headers": {"User-Agent": HOSTILE, f"X-{CLEAR}": OSC52}}
            ),
        }
    )
    await produce(settings, settings.topics.dead_letters, signed(forged))
    records = await consume_all(
        settings.kafka.bootstrap_servers, settings.topics.dead_letters, expected=2
    )
    assert len(records) == 2

    outputs, shown = [], {}
    for argv in (["list"], ["list", "--json"]):
        code, out, err = await tool(settings, *argv)
        assert code == 0
        outputs.append(out + err)
    for r in records:
        code, out, err = await tool(settings, "show", f"{r.partition}@{r.offset}")
        assert code == 0, err
        outputs.append(out + err)
        shown[json.loads(r.value)["dead_letter_id"] == forged.dead_letter_id] = out
    for text in outputs:
        assert unprintable(text) == [], text
    assert outputs[0].splitlines()[-1] == "2 dead letters"
    assert len(outputs[0].splitlines()) == 4  # a newline in a field makes no new row
    assert len(outputs[1].splitlines()) == 2
    received, forgery = shown[False], shown[True]
    assert "  from = 321555\\x1b[2J\\x1b[H\\x1b]52;c;cm0gLXJmIH4=\\x07\\x9b31m\\u202e" in received
    assert "signature: verified" in received
    assert (
        '"User-Agent": "321555\\u001b[2J\\u001b[H\\u001b]52;c;cm0gLXJmIH4=\\u0007\\x9b31m'
        in forgery
    )
    assert "signature: none" in forgery
    assert forgery.splitlines()[-1] == "replay: never replayed"


async def test_a_command_topic_that_stamps_broker_time_stops_the_replay(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    bridge = await start_bridge()
    settings = await with_replay_topic(bridge.settings, new_topic)
    log_append = await new_topic("commands", configs={"message.timestamp.type": "LogAppendTime"})
    topics = settings.topics.model_copy(update={"place_call": log_append})
    settings = settings.model_copy(update={"topics": topics})
    written = datetime.now(UTC) - timedelta(days=2)
    letter = refused_command(command(f"c-{uuid.uuid4()}").model_dump(mode="json"), written=written)
    await produce(settings, topics.dead_letters, signed(letter, COMMAND_SIGNING_KEY))

    code, out, err = await tool(settings, "replay")
    assert code == 1, out
    assert "message.timestamp.type=LogAppendTime" in err
    kafka = settings.kafka.bootstrap_servers
    assert await read_to_end(kafka, log_append) == []  # the batch was aborted
    assert await read_to_end(kafka, topics.dead_letter_replays) == []
    assert await read_to_end(kafka, topics.dead_letter_audit) == []


async def test_a_signature_header_without_a_value_is_a_bad_signature(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    bridge = await start_bridge()
    settings = await with_replay_topic(bridge.settings, new_topic)
    kafka, topics = settings.kafka.bootstrap_servers, settings.topics
    real = refused_callback(callback(status="BEGIN"))
    # Kafka headers may be null (a Java producer writes them so); the value is then None.
    forged = refused_callback(callback(status="END"))
    null_signed = (None, forged.model_dump_json().encode(), [("bridge_signature", None)])
    await produce(settings, topics.dead_letters, null_signed, signed(real, CALLBACK_SIGNING_KEY))

    code, out, err = await tool(settings, "show", forged.dead_letter_id)
    assert code == 0, err
    assert "signature: DOES NOT VERIFY" in out
    code, out, err = await tool(settings, "replay", "-v")
    assert code == 0, err
    assert f"{forged.dead_letter_id}  callback invalid_fields  now bad_signature:" in out
    assert "  replayed              1  (callback 1)" in out
    (event,) = await read_to_end(kafka, topics.call_events)
    assert headers_of(event)[REPLAYED_FROM] == real.dead_letter_id
    audit = {a["dead_letter_id"]: a["integrity"] for a in await audit_of(settings)}
    assert audit == {forged.dead_letter_id: "bad_signature", real.dead_letter_id: "signed"}


async def test_a_forgery_too_large_to_record_does_not_stop_the_replay(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    bridge = await start_bridge()
    settings = await with_replay_topic(bridge.settings, new_topic)
    kafka, topics = settings.kafka.bootstrap_servers, settings.topics
    # No key needed: each fits the topic, but its replay and audit records would repeat the
    # id or reason code (key and value) and be larger than a Kafka request may be.
    huge_id = refused_callback(callback(status="BEGIN"))
    huge_id = huge_id.model_copy(update={"dead_letter_id": "x" * 600_000})
    huge_code = refused_callback(callback(status="BEGIN"))
    huge_code = huge_code.model_copy(update={"reason_code": "y" * 600_000})
    real = refused_callback(callback(status="END"))
    await produce(
        settings,
        topics.dead_letters,
        signed(huge_id, b"w" * 32),
        signed(huge_code),
        signed(real, CALLBACK_SIGNING_KEY),
    )

    for run in range(2):
        code, out, err = await tool(settings, "replay")
        assert code == 0, err
        outcome = "replayed" if run == 0 else "already replayed"
        assert f"  {outcome:<17}     1  (callback 1)" in out
        assert "  unreadable            2" in out
    (event,) = await read_to_end(kafka, topics.call_events)
    assert headers_of(event)[REPLAYED_FROM] == real.dead_letter_id
    code, out, _ = await tool(settings, "list")
    assert (code, out.splitlines()[-1]) == (0, "3 dead letters (2 unreadable)")
    assert "dead_letter_id: longer than 200 characters" in out
    assert "reason_code: longer than 200 characters" in out


async def test_a_time_without_an_offset_is_unreadable_even_allowed_unsigned(
    start_bridge: BridgeFactory, new_topic: NewTopicFactory
) -> None:
    bridge = await start_bridge()
    settings = await with_replay_topic(bridge.settings, new_topic)
    kafka, topics = settings.kafka.bootstrap_servers, settings.topics
    callback_letter = json.loads(refused_callback(callback(status="BEGIN")).model_dump_json())
    callback_letter["received_at"] = "2026-12-06T10:00:00"
    written = datetime.now(UTC) - timedelta(minutes=5)
    value = command(f"naive-{uuid.uuid4()}").model_dump(mode="json")
    command_letter = json.loads(refused_command(value, written=written).model_dump_json())
    command_letter["record"]["timestamp"] = "2026-12-06T10:00:00"
    real = refused_callback(callback(status="END"))
    await produce(
        settings,
        topics.dead_letters,
        (None, json.dumps(callback_letter).encode(), []),
        (None, json.dumps(command_letter).encode(), []),
        signed(real, CALLBACK_SIGNING_KEY),
    )

    code, out, err = await tool(settings, "replay", "--allow-unsigned")
    assert code == 0, err
    assert "  replayed              1  (callback 1)" in out
    assert "  unreadable            2" in out
    (event,) = await read_to_end(kafka, topics.call_events)
    assert headers_of(event)[REPLAYED_FROM] == real.dead_letter_id
    assert await read_to_end(kafka, topics.place_call) == []
