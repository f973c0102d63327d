"""A command record as the worker sees it: its identity, and its whole copy for a dead letter."""

from __future__ import annotations

import base64
import json
from typing import Any, TypeAlias

from aiokafka.structs import ConsumerRecord

from bridge.contracts.dead_letters import KafkaRecordRef

Record: TypeAlias = ConsumerRecord[bytes, bytes]


def source_of(topic: str, partition: int, offset: int) -> str:
    """Identity of one command record."""
    return f"{topic}/{partition}/{offset}"


def _text(raw: bytes | None) -> tuple[str | None, str]:
    if raw is None:
        return None, "utf-8"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def record_ref(record: Record) -> KafkaRecordRef:
    """The whole record, for a dead letter."""
    key, _ = _text(record.key)
    value, encoding = _text(record.value)
    headers = {name: (_text(v)[0] or "") for name, v in (record.headers or ())}
    return KafkaRecordRef(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key,
        value=value,
        value_encoding=encoding,  # type: ignore[arg-type]
        headers=headers,
    )


def readable_command_id(record: Record) -> str | None:
    """Best-effort command id of an invalid command (from the JSON, else the key)."""
    try:
        data: Any = json.loads(record.value or b"")
        if isinstance(data, dict) and isinstance(data.get("command_id"), str):
            return str(data["command_id"]) or None
    except (ValueError, UnicodeDecodeError):
        pass
    key, encoding = _text(record.key)
    return key if encoding == "utf-8" and key else None
