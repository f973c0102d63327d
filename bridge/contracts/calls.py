"""Versioned event schemas the bridge produces, and their CloudEvents envelope.

Every model here is a public contract: its JSON Schema lives in ``schemas/`` (written by
``fonestorm-bridge schemas export``) and its ``$id`` is the ``ce_dataschema`` header of every
record that carries it. Adding an optional field is a compatible change within a version;
anything else needs a new model and a new topic version.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_BASE_URI = "https://schemas.fonestorm-bridge.dev/"
CLOUDEVENTS_SPEC_VERSION = "1.0"
CONTENT_TYPE_JSON = "application/json"

# uuid5 namespace for event ids: the same callback delivered twice gets the same id.
_EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c52-8d4e-4b7e-9a57-3f1f0e2d9c11")


class Direction(StrEnum):
    """Who placed the call: ``OUTBOUND`` from our FoneNumber, ``INBOUND`` to it."""

    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class CallStatus(StrEnum):
    """Which callback of the call this is."""

    BEGIN = "BEGIN"
    END = "END"


class CallType(StrEnum):
    """Kind of call; FoneStorm documents only voice calls."""

    VOICE = "VOICE"


class Disposition(StrEnum):
    """How the call ended (``FAILED:XXX`` is split into ``FAILED`` and ``failure_code``)."""

    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO_ANSWER"
    BUSY = "BUSY"
    CANCEL = "CANCEL"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


class VersionedEvent(BaseModel):
    """Base of every published model: frozen, no unknown fields, a schema id and version."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    #: Short schema name, used in the file name and ``$id``.
    schema_name: ClassVar[str]
    schema_version: ClassVar[int]

    @classmethod
    def schema_id(cls) -> str:
        """URI naming this schema version; also the ``ce_dataschema`` header."""
        return f"{SCHEMA_BASE_URI}{cls.schema_name}/v{cls.schema_version}.json"

    @classmethod
    def schema_file(cls) -> str:
        """File name of the schema in ``schemas/``."""
        return f"{cls.schema_name}.v{cls.schema_version}.json"

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of this model, with ``$id``."""
        schema = cls.model_json_schema(mode="serialization")
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": cls.schema_id(),
            **schema,
        }


class CallEvent(VersionedEvent):
    """One FoneStorm call callback (``BEGIN`` or ``END``) as an event."""

    schema_name: ClassVar[str] = "call-event"
    schema_version: ClassVar[int] = 1

    event_id: str = Field(
        description="Stable id derived from call id, direction and status: a redelivered "
        "callback has the same id, so consumers can de-duplicate."
    )
    call_id: str = Field(description="FoneStorm's unique call identifier (`uid`).")
    account_code: str = Field(description="FoneStorm account code.")
    direction: Direction = Field(description="`INBOUND` or `OUTBOUND`.")
    status: CallStatus = Field(description="`BEGIN` or `END`.")
    call_type: CallType = Field(description="Call type (`VOICE`).")
    from_number: str = Field(description="Caller number as FoneStorm sent it.")
    from_e164: str | None = Field(description="Caller number in E.164, null if not a number.")
    to_number: str = Field(description="Called number as FoneStorm sent it.")
    to_e164: str | None = Field(description="Called number in E.164, null if not a number.")
    fonenumber: str = Field(
        description="Our FoneNumber on this call: `from` for outbound, `to` for inbound."
    )
    fonenumber_e164: str | None = Field(description="Our FoneNumber in E.164.")
    disposition: Disposition | None = Field(
        None, description="How the call ended; set on `END` only."
    )
    failure_code: str | None = Field(
        None, description="The `XXX` of a `FAILED:XXX` disposition (e.g. `503`)."
    )
    billable_seconds: int | None = Field(
        None, ge=0, description="Billable seconds; set on `END` only."
    )
    received_at: datetime = Field(description="When the bridge received the callback (UTC).")
    command_id: str | None = Field(
        None, description="Id of the PlaceCallCommand that placed this call, if the bridge did."
    )
    correlation_id: str | None = Field(
        None, description="Correlation id of that PlaceCallCommand, if any."
    )

    @property
    def ce_type(self) -> str:
        """CloudEvents type, e.g. ``com.fonestorm.call.begin``."""
        return f"com.fonestorm.call.{self.status.value.lower()}"


class HttpRequestRecord(BaseModel):
    """The raw HTTP request of a rejected callback, enough to replay it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field(description="HTTP method.")
    path: str = Field(description="Request path.")
    query: str = Field(description="Raw query string (undecoded).")
    headers: dict[str, str] = Field(
        description="Request headers, credentials (Authorization, Cookie, token) removed."
    )
    body: str = Field(description="Body as text (`body_encoding` utf-8) or base64.")
    body_encoding: Literal["utf-8", "base64"] = Field(description="How `body` is encoded.")
    body_truncated: bool = Field(
        description="True when the body is incomplete: cut at the size limit, or stalled past "
        "the body timeout."
    )
    remote: str | None = Field(None, description="Peer address.")


class KafkaRecordRef(BaseModel):
    """A Kafka record that was rejected, with its content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(description="Topic the record was read from.")
    partition: int = Field(description="Partition.")
    offset: int = Field(description="Offset.")
    key: str | None = Field(None, description="Key, base64 if not UTF-8.")
    value: str | None = Field(None, description="Value as text, or base64 if not UTF-8.")
    value_encoding: Literal["utf-8", "base64"] = Field("utf-8", description="How `value` is.")
    headers: dict[str, str] = Field(default_factory=dict, description="Record headers.")


class DeadLetter(VersionedEvent):
    """Something the bridge refused, kept whole with the reason, so nothing is lost."""

    schema_name: ClassVar[str] = "dead-letter"
    schema_version: ClassVar[int] = 1

    dead_letter_id: str = Field(description="Unique id of this dead letter.")
    source: Literal["callback", "command"] = Field(description="What was refused.")
    reason_code: str = Field(description="Machine-readable reason, same as the HTTP error code.")
    reason: str = Field(description="Human-readable reason.")
    received_at: datetime = Field(description="When the bridge received it (UTC).")
    http_status: int | None = Field(None, description="Status the bridge answered with.")
    request: HttpRequestRecord | None = Field(None, description="The rejected HTTP request.")
    record: KafkaRecordRef | None = Field(None, description="The rejected Kafka record.")

    @property
    def ce_type(self) -> str:
        """CloudEvents type of a dead letter."""
        return f"com.fonestorm.bridge.dead-letter.{self.source}"


def uuid5(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))``, without the ``UUID`` objects that cost more than
    the hash itself on the callback and command paths."""
    sha1 = hashlib.sha1(namespace.bytes + name.encode(), usedforsecurity=False)
    digest = bytearray(sha1.digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def call_event_id(call_id: str, direction: Direction, status: CallStatus) -> str:
    """Deterministic event id: the same callback always maps to the same id (a UUID v5)."""
    return uuid5(_EVENT_ID_NAMESPACE, f"{call_id}\x1f{direction.value}\x1f{status.value}")


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 time as CloudEvents wants it."""
    if value.tzinfo is not UTC:  # skips a conversion that costs more than the formatting
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def cloudevent_headers(
    *,
    event_id: str,
    source: str,
    ce_type: str,
    time: datetime,
    subject: str | None,
    dataschema: str,
) -> list[tuple[str, bytes]]:
    """Kafka headers of the CloudEvents Kafka protocol binding, binary content mode."""
    headers = [
        ("ce_specversion", _SPEC_VERSION_BYTES),
        ("ce_id", event_id.encode()),
        ("ce_source", _encoded(source)),
        ("ce_type", _encoded(ce_type)),
        ("ce_time", format_time(time).encode()),
        ("ce_dataschema", _encoded(dataschema)),
        ("content-type", _CONTENT_TYPE_BYTES),
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    return headers


_SPEC_VERSION_BYTES = CLOUDEVENTS_SPEC_VERSION.encode()
_CONTENT_TYPE_BYTES = CONTENT_TYPE_JSON.encode()


@functools.lru_cache(maxsize=256)
def _encoded(value: str) -> bytes:
    """Header values that repeat on every record (source, type, schema), encoded once."""
    return value.encode()
