"""Place-call commands in and their results out: the versioned models and command parsing."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from aiokafka.structs import ConsumerRecord
from pydantic import AwareDatetime, Field, ValidationError

from bridge.contracts.calls import KafkaRecordRef, VersionedEvent
from bridge.errors import InvalidCommand


class PlaceCallCommand(VersionedEvent):
    """Ask the bridge to place one call through FoneStorm."""

    schema_name: ClassVar[str] = "place-call-command"
    schema_version: ClassVar[int] = 1

    command_id: str = Field(
        min_length=1,
        max_length=200,
        description="Idempotency key: the bridge places at most one call per command_id.",
    )
    fonenumber: str = Field(min_length=1, max_length=32, description="Our FoneNumber to call from.")
    to: str = Field(min_length=1, max_length=32, description="Number to call.")
    tts: str | None = Field(None, max_length=4000, description="Text to speech message.")
    correlation_id: str | None = Field(
        None, max_length=200, description="Caller's id, copied to the result and every event."
    )
    not_after: AwareDatetime | None = Field(
        None, description="Do not place the call after this time (result `expired`)."
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Passed through to the result unchanged."
    )


class ResultStatus(StrEnum):
    """What became of a command."""

    PLACED = "placed"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    IN_DOUBT = "in_doubt"


class PlaceCallResult(VersionedEvent):
    """The final outcome of one place-call command."""

    schema_name: ClassVar[str] = "place-call-result"
    schema_version: ClassVar[int] = 1

    command_id: str = Field(description="The command's id (also the record key).")
    status: ResultStatus = Field(description="Outcome.")
    call_id: str | None = Field(None, description="FoneStorm call id when a call was placed.")
    attempts: int = Field(0, ge=0, description="Create-call requests made for this command.")
    error_code: str | None = Field(None, description="Machine-readable reason of a non-placed.")
    error_message: str | None = Field(None, description="Human-readable reason.")
    correlation_id: str | None = Field(None, description="From the command.")
    metadata: dict[str, str] = Field(default_factory=dict, description="From the command.")
    received_at: datetime = Field(description="When the worker read the command (UTC).")
    finished_at: datetime = Field(description="When the outcome was decided (UTC).")

    @property
    def ce_type(self) -> str:
        """CloudEvents type, e.g. ``com.fonestorm.bridge.place-call.placed``."""
        return f"com.fonestorm.bridge.place-call.{self.status.value}"


class CallPlaced(VersionedEvent):
    """A call the bridge placed, on the call-events topic (keyed by call id)."""

    schema_name: ClassVar[str] = "call-placed"
    schema_version: ClassVar[int] = 1

    event_id: str = Field(description="Stable id of this event (derived from the call id).")
    call_id: str = Field(description="FoneStorm call id.")
    command_id: str = Field(description="The command that placed it.")
    correlation_id: str | None = Field(None, description="From the command.")
    fonenumber: str = Field(description="Our FoneNumber (caller).")
    to: str = Field(description="Called number.")
    placed_at: datetime = Field(description="When FoneStorm accepted the call (UTC).")

    ce_type: ClassVar[str] = "com.fonestorm.call.placed"


def _text(raw: bytes | None) -> tuple[str | None, str]:
    if raw is None:
        return None, "utf-8"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def record_ref(record: ConsumerRecord[bytes, bytes]) -> KafkaRecordRef:
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


def readable_command_id(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """Best-effort command id of an invalid command (from the JSON, else the key)."""
    try:
        data: Any = json.loads(record.value or b"")
        if isinstance(data, dict) and isinstance(data.get("command_id"), str):
            return str(data["command_id"]) or None
    except (ValueError, UnicodeDecodeError):
        pass
    key, encoding = _text(record.key)
    return key if encoding == "utf-8" and key else None


def parse_command(record: ConsumerRecord[bytes, bytes]) -> PlaceCallCommand:
    """The command in ``record``, or :class:`InvalidCommand` saying what is wrong."""
    if record.value is None:
        raise InvalidCommand("record has no value")
    try:
        text = record.value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCommand("value is not valid UTF-8") from None
    try:
        return PlaceCallCommand.model_validate_json(text)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise InvalidCommand(f"value is not valid JSON: {exc.errors()[0]['msg']}") from None
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        raise InvalidCommand("; ".join(parts)) from None
