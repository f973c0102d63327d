"""Driving `fonestorm-bridge dead-letters` in tests, and writing the dead-letter topic by hand."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from bridge.cli import build_parser
from bridge.contracts.dead_letters import DeadLetter, HttpRequestRecord, KafkaRecordRef
from bridge.contracts.signing import SIGNATURE_HEADER, sign
from bridge.dead_letters.cli import run_command
from bridge.dead_letters.decision import ReplayContext
from bridge.settings import Settings
from tests.support.callbacks import CALLBACK_PATH
from tests.support.kafka_broker import NewTopicFactory

Record = tuple[bytes | None, bytes, Sequence[tuple[str, bytes]]]


async def with_replay_topic(settings: Settings, new_topic: NewTopicFactory) -> Settings:
    """The bridge's settings plus fresh replay and audit topics (the tool's own)."""
    topics = settings.topics.model_copy(
        update={
            "dead_letter_replays": await new_topic("replays"),
            "dead_letter_audit": await new_topic("audit"),
        }
    )
    return settings.model_copy(update={"topics": topics})


async def tool(settings: Settings, *argv: str) -> tuple[int, str, str]:
    """Run `fonestorm-bridge dead-letters ARGV` in this event loop: status, stdout, stderr."""
    args = build_parser().parse_args(["dead-letters", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = await run_command(settings, args, out, err)
    return code, out.getvalue(), err.getvalue()


async def produce(settings: Settings, topic: str, *records: Record) -> None:
    """Write ``(key, value, headers)`` records with a plain producer, as anyone with WRITE on
    the topic can."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=list(headers))
    finally:
        await producer.stop()


def refused_callback(
    data: dict[str, Any],
    *,
    received_at: datetime | None = None,
    reason: str = "refused by an older release",
) -> DeadLetter:
    """The dead letter of JSON callback ``data`` whose fields a receiver refused (received
    now by default)."""
    body = json.dumps(data)
    return DeadLetter(
        dead_letter_id=str(uuid.uuid4()),
        source="callback",
        reason_code="invalid_fields",
        reason=reason,
        received_at=datetime.now(UTC) if received_at is None else received_at,
        http_status=422,
        request=HttpRequestRecord(
            method="POST",
            path=CALLBACK_PATH,
            query="",
            headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
            body=body,
            body_encoding="utf-8",
            body_truncated=False,
            remote="127.0.0.1",
        ),
    )


def refused_command(
    value: dict[str, Any], *, written: datetime, key: str | None = None, **headers: str
) -> DeadLetter:
    """The dead letter of command ``value`` (written then) that a worker refused."""
    return DeadLetter(
        dead_letter_id=str(uuid.uuid4()),
        source="command",
        reason_code="fonenumber_not_allowed",
        reason="refused by an older allow-list",
        received_at=written + timedelta(seconds=1),
        record=KafkaRecordRef(
            topic="fonestorm.place-call.v1",
            partition=0,
            offset=17,
            key=key if key is not None else value["command_id"],
            value=json.dumps(value),
            headers=headers,
            timestamp=written,
        ),
    )


def signed(letter: DeadLetter, *signing_keys: bytes) -> Record:
    """``letter`` as a record, with a signature made with each of ``signing_keys``."""
    value = letter.model_dump_json().encode()
    return None, value, [(SIGNATURE_HEADER, sign(key, value)) for key in signing_keys]


async def write_dead_letters(settings: Settings, *letters: DeadLetter) -> None:
    """``letters`` on the dead-letter topic, signed with the key of their source as the bridge
    signs them (as an earlier release wrote them, say)."""
    keys = [settings.dead_letters.key_for(letter.source) for letter in letters]
    assert all(key is not None for key in keys)
    records = (signed(letter, key) for letter, key in zip(letters, keys, strict=True) if key)
    await produce(settings, settings.topics.dead_letters, *records)


def replay_context(now: datetime, max_age: timedelta) -> ReplayContext:
    """What a replay decides with, at ``now``: topics ``events`` and ``commands``, region US."""
    return ReplayContext(
        call_events="events",
        place_call="commands",
        region="US",
        max_body_bytes=1024,
        ce_source="/fonestorm-bridge/callbacks",
        now=now,
        max_age=max_age,
    )
