"""A command record as the worker sees it: its identity, and its whole copy for a dead letter."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
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


#: Largest command value copied whole into a dead letter: base64 grows it by a third, and the
#: dead letter must stay under the broker's record size limit (1 MB by default).
MAX_DEAD_LETTER_VALUE = 256 * 1024


def record_ref(record: Record, *, max_value: int | None = MAX_DEAD_LETTER_VALUE) -> KafkaRecordRef:
    """The record, for a dead letter; its value cut at ``max_value`` bytes (``0``: dropped)."""
    key, _ = _text(record.key)
    raw = record.value
    truncated = raw is not None and max_value is not None and len(raw) > max_value
    if truncated and raw is not None and max_value is not None:
        raw = raw[:max_value] or None
    value, encoding = _text(raw)
    headers = {name: (_text(v)[0] or "") for name, v in (record.headers or ())}
    stamp = record.timestamp
    return KafkaRecordRef(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key,
        value=value,
        value_encoding=encoding,  # type: ignore[arg-type]
        value_truncated=truncated,
        headers=headers,
        timestamp=None if stamp is None or stamp < 0 else datetime.fromtimestamp(stamp / 1000, UTC),
    )


def readable_command_id(record: Record) -> str | None:
    """Best-effort command id of an invalid command (from the JSON, else the key)."""
    value = record.value or b""
    if value[:1] == b"\x00" and len(value) >= 5:
        value = value[5:]  # the Confluent wire format: magic byte and schema id
    try:
        data: Any = json.loads(value)
        if isinstance(data, dict) and isinstance(data.get("command_id"), str):
            # A lone surrogate (JSON may escape one) has no UTF-8: no record could carry it.
            data["command_id"].encode()
            return str(data["command_id"]) or None
    except (ValueError, RecursionError):  # UnicodeError is a ValueError; nesting has no bound
        pass
    key, encoding = _text(record.key)
    return key if encoding == "utf-8" and key else None
