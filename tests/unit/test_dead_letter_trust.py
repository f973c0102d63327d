"""The pure parts of trusting a dead letter: what its signature shows, what a replay makes of
it, its audit record.

The dead-letter topic is written by the internet-facing receiver: a replay acts only on what
the bridge signed, and rebuilds every record it writes from validated content.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.commands import decision as worker_decision
from bridge.contracts.dead_letters import DeadLetter, HttpRequestRecord, KafkaRecordRef
from bridge.contracts.signing import sign
from bridge.dead_letters import decision as replay_decision
from bridge.dead_letters.audit import audit_record
from bridge.dead_letters.decision import ReplayContext, decide, max_age
from bridge.dead_letters.integrity import Integrity, check, refusal
from bridge.dead_letters.model import Operator, ProducedTo, ReplayRecord
from tests.support.callbacks import callback
from tests.support.dead_letters import replay_context

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
KEY = b"k" * 32
OTHER_KEY = b"o" * 32
VALUE = b'{"dead_letter_id": "dl-1"}'
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CONTEXT = replay_context(NOW, max_age(7 * 86400))
CALL = callback("OUTBOUND", "END", uid="call-1", billable_seconds=3)


@pytest.mark.parametrize(
    ("signatures", "key", "expected"),
    [
        ((), KEY, "unsigned"),
        ((), None, "unsigned"),
        ((sign(KEY, VALUE),), KEY, "signed"),
        ((sign(OTHER_KEY, VALUE),), KEY, "bad_signature"),
        ((b"garbage",), KEY, "bad_signature"),
        ((sign(KEY, VALUE),), None, "no_key"),
        ((sign(KEY, VALUE), sign(KEY, VALUE)), KEY, "bad_signature"),
    ],
)
def test_integrity(signatures: tuple[bytes, ...], key: bytes | None, expected: str) -> None:
    assert check(VALUE, signatures, key) == expected


@pytest.mark.parametrize(
    ("integrity", "allow_unsigned", "code"),
    [
        ("signed", False, None),
        ("signed", True, None),
        ("unsigned", False, "unsigned"),
        ("unsigned", True, None),
        ("no_key", False, "no_signing_key"),
        ("no_key", True, None),
        ("bad_signature", False, "bad_signature"),
        ("bad_signature", True, "bad_signature"),
    ],
)
def test_refusals(integrity: Integrity, allow_unsigned: bool, code: str | None) -> None:
    refused = refusal(integrity, "command", allow_unsigned=allow_unsigned)
    assert (refused[0] if refused else None) == code


def test_the_margin_is_the_workers() -> None:
    assert replay_decision.CLOCK_MARGIN_SHARE == worker_decision.CLOCK_MARGIN_SHARE
    assert max_age(1000.0) == timedelta(seconds=900)


def command_letter(
    value: dict[str, Any] | None = None,
    *,
    written: datetime | None = NOW - timedelta(hours=1),
    received: datetime = NOW - timedelta(minutes=30),
    **record: Any,
) -> DeadLetter:
    command = {"command_id": "c-1", "fonenumber": "3215551081", "to": "3215550100"}
    ref = {
        "topic": "commands", "partition": 2, "offset": 41, "key": "c-1",
        "value": json.dumps(command if value is None else value), "timestamp": written,
    }  # fmt: skip
    return DeadLetter(
        dead_letter_id="dl-2",
        source="command",
        reason_code="fonenumber_not_allowed",
        reason="fonenumber 3215551081 is not one of ours",
        received_at=received,
        record=KafkaRecordRef.model_validate(ref | record),
    )


def callback_letter(received: datetime = NOW - timedelta(hours=1)) -> DeadLetter:
    body = json.dumps(CALL)
    request = {
        "method": "POST", "path": "/callbacks/calls", "query": "",
        "headers": {"Content-Type": "application/json"}, "body": body,
        "body_encoding": "utf-8", "body_truncated": False,
    }  # fmt: skip
    return DeadLetter(
        dead_letter_id="dl-1",
        source="callback",
        reason_code="invalid_fields",
        reason="disposition: unknown",
        received_at=received,
        http_status=422,
        request=HttpRequestRecord.model_validate(request),
    )


REPLAYED = ReplayRecord(dead_letter_id="dl-2", outcome="replayed", replayed_at=NOW)
TOO_OLD = NOW - timedelta(days=6, hours=8)  # past 90% of 7 days (6 days 7.2 hours)
ALLOW = ReplayContext(**{**CONTEXT.__dict__, "allow_unsigned": True})


@pytest.mark.parametrize(
    ("letter", "integrity", "context", "previous", "outcome", "code"),
    [
        (command_letter(), "signed", CONTEXT, None, "replayed", None),
        (command_letter(), "unsigned", CONTEXT, None, "still_invalid", "unsigned"),
        (command_letter(), "unsigned", ALLOW, None, "replayed", None),
        (command_letter(), "no_key", CONTEXT, None, "still_invalid", "no_signing_key"),
        (command_letter(), "no_key", ALLOW, None, "replayed", None),
        (command_letter(), "bad_signature", CONTEXT, None, "still_invalid", "bad_signature"),
        (command_letter(), "bad_signature", ALLOW, None, "still_invalid", "bad_signature"),
        # A forgery under the id of a dead letter already replayed changes nothing.
        (command_letter(), "bad_signature", CONTEXT, REPLAYED, "already_replayed", None),
        (command_letter(written=TOO_OLD), "signed", CONTEXT, None, "still_invalid", "too_old"),
        (command_letter(written=TOO_OLD), "unsigned", ALLOW, None, "still_invalid", "too_old"),
        # Without the record's own time, when the worker received it.
        (command_letter(written=None, received=TOO_OLD), "signed", CONTEXT, None,
         "still_invalid", "too_old"),
        (command_letter(written=None), "signed", CONTEXT, None, "replayed", None),
        (callback_letter(), "signed", CONTEXT, None, "replayed", None),
        (callback_letter(), "unsigned", CONTEXT, None, "still_invalid", "unsigned"),
        (callback_letter(TOO_OLD), "signed", CONTEXT, None, "still_invalid", "too_old"),
    ],
)  # fmt: skip
def test_decisions_trust_only_the_bridge(
    letter: DeadLetter,
    integrity: Integrity,
    context: ReplayContext,
    previous: ReplayRecord | None,
    outcome: str,
    code: str | None,
) -> None:
    decision = decide(letter, previous, context, integrity=integrity)
    assert (decision.outcome, decision.reason_code) == (outcome, code)
    assert (decision.outgoing is not None) == (outcome == "replayed")
    assert decision.integrity == integrity


def test_a_replayed_command_is_rebuilt_from_its_validated_content() -> None:
    written = NOW - timedelta(days=2, seconds=0.25)
    value = {
        "command_id": "c-1", "fonenumber": "3215551081", "to": "3215550100",
        "not_after": "2026-12-01T00:00:00+00:00", "smuggled": "\u001b[2J",
    }  # fmt: skip
    letter = command_letter(
        value,
        written=written,
        key="another-key",  # a key other than the command id moves it to another partition
        headers={
            "ce_id": "x",
            "ce_type": "com.fonestorm.bridge.place-call",
            "bridge_replayed_from": "older",
            "bridge_signature": "hmac-sha256=00",
            "x-evil": "1",
            "traceparent": TRACEPARENT,
            "tracestate": "vendor=value",
            "ce_traceparent": "00-not-a-trace-context",
        },
    )
    out = decide(letter, None, CONTEXT, integrity="signed").outgoing
    assert out is not None
    assert (out.topic, out.key) == ("commands", b"c-1")
    assert json.loads(out.value) == {
        "command_id": "c-1", "fonenumber": "3215551081", "to": "3215550100", "tts": None,
        "correlation_id": None, "not_after": "2026-12-01T00:00:00Z", "metadata": {},
    }  # fmt: skip
    assert out.headers == (
        ("traceparent", TRACEPARENT.encode()),
        ("tracestate", b"vendor=value"),
        ("bridge_replayed_from", b"dl-2"),
    )
    assert out.timestamp_ms == int(written.timestamp() * 1000)


def test_a_replayed_command_without_its_record_time_keeps_when_it_was_received() -> None:
    received = NOW - timedelta(hours=5)
    out = decide(
        command_letter(written=None, received=received), None, CONTEXT, integrity="signed"
    ).outgoing
    assert out is not None
    assert out.timestamp_ms == int(received.timestamp() * 1000)


def test_a_replayed_callback_is_stamped_when_produced() -> None:
    out = decide(callback_letter(), None, CONTEXT, integrity="signed").outgoing
    assert out is not None
    assert out.timestamp_ms is None  # its event keeps received_at and ce_time


def test_the_audit_record_says_who_what_when_and_where() -> None:
    who = Operator(user="ops", host="bastion", pid=7, kafka_user="replayer", client_id="cli")
    decision = decide(command_letter(), None, CONTEXT, integrity="signed")
    record = audit_record(
        decision,
        dead_letter=ProducedTo(topic="dlq", partition=1, offset=5),
        produced_to=ProducedTo(topic="commands", partition=0, offset=9),
        at=NOW,
        who=who,
        allow_unsigned=False,
        version="1.2.3",
    )
    assert json.loads(record.model_dump_json()) == {
        "dead_letter_id": "dl-2",
        "source": "command",
        "dead_letter": {"topic": "dlq", "partition": 1, "offset": 5},
        "dead_lettered_as": "fonenumber_not_allowed",
        "integrity": "signed",
        "allow_unsigned": False,
        "outcome": "replayed",
        "what": "command c-1",
        "reason_code": None,
        "reason": None,
        "produced_to": {"topic": "commands", "partition": 0, "offset": 9},
        "key": "c-1",
        "replayed_at": "2026-11-30T12:00:00Z",
        "operator": {
            "user": "ops", "host": "bastion", "pid": 7, "kafka_user": "replayer",
            "client_id": "cli",
        },
        "version": "1.2.3",
    }  # fmt: skip
    refused = decide(command_letter(), None, CONTEXT, integrity="bad_signature")
    record = audit_record(
        refused,
        dead_letter=ProducedTo(topic="dlq", partition=1, offset=6),
        produced_to=None,
        at=NOW,
        who=who,
        allow_unsigned=True,
        version="1.2.3",
    )
    assert (record.outcome, record.reason_code, record.integrity, record.key) == (
        "still_invalid",
        "bad_signature",
        "bad_signature",
        None,
    )
