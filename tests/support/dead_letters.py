"""Driving `fonestorm-bridge dead-letters` in tests, and writing the dead-letter topic by hand."""

from __future__ import annotations

import io
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from bridge.cli import build_parser
from bridge.dead_letters.cli import run_command
from bridge.settings import Settings
from tests.support.kafka_broker import NewTopicFactory


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


async def produce(
    settings: Settings,
    topic: str,
    *records: tuple[bytes | None, bytes, Sequence[tuple[str, bytes]]],
) -> None:
    """Write ``(key, value, headers)`` records with a plain producer, as anyone with WRITE on
    the topic can."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=list(headers))
    finally:
        await producer.stop()
