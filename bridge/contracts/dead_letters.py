"""Dead letters: whatever the bridge refused, kept whole with the reason, so nothing is lost."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from bridge.contracts.base import CloudEventFields, VersionedEvent


class HeaderLine(BaseModel):
    """One header line as it came: an HTTP field line or a Kafka record header (names repeat)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Name as it came (its case kept).")
    value: str | None = Field(
        description="Value as text (`value_encoding` utf-8), or base64 of its bytes when they "
        "are not UTF-8; null only for a Kafka header without a value."
    )
    value_encoding: Literal["utf-8", "base64"] = Field("utf-8", description="How `value` is.")


class HttpRequestRecord(BaseModel):
    """The raw HTTP request of a rejected callback, enough to replay it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field(description="HTTP method.")
    path: str = Field(description="Request path.")
    query: str = Field(description="Raw query string (undecoded).")
    headers: dict[str, str] = Field(
        description="Request headers kept by an allow-list (content type, length and encoding, "
        "user agent, host, forwarding, request id, traceparent), never credentials; each value "
        "cut at 1,024 characters and made valid UTF-8. A header sent on several lines is one "
        'entry, its lines joined with ", "; `header_lines` has each line.'
    )
    header_lines: list[HeaderLine] | None = Field(
        None,
        description="Every line of the allow-listed headers, in the order they came, with "
        "the name as sent and the exact value (base64 when not UTF-8), each value cut at "
        "1,024 characters (then `…`) and all of them at 12,288 (later values cut to `…`). "
        "Absent in dead letters of releases before it.",
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
    value_truncated: bool = Field(
        False,
        description="True when `value` was cut to keep the dead letter within Kafka's "
        "record size limit.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Record headers, one value per name (the last of a repeated name; base64 "
        "if not UTF-8); `header_lines` has each header. Empty when the dead letter was cut to "
        "fit Kafka's record size limit (its reason says so): `header_lines` keeps them.",
    )
    header_lines: list[HeaderLine] | None = Field(
        None,
        description="Every record header in order, repeated names included, with its exact "
        "value (base64 when not UTF-8, null when it has none). To fit Kafka's record size "
        "limit a dead letter drops the `headers` mapping first, then the value, then may have "
        "these names and values cut to 1,024 characters (then `…`) and at most 32 headers, or "
        "none (null); its reason says so. Null in dead letters of releases before it too.",
    )
    timestamp: datetime | None = Field(
        None,
        description="When the record was written (its Kafka timestamp): a replayed command "
        "keeps it, so the worker's too-old guard still applies. Absent in dead letters of "
        "releases before it.",
    )


class DeadLetter(VersionedEvent):
    """Something the bridge refused, kept whole with the reason, so nothing is lost."""

    schema_name: ClassVar[str] = "dead-letter"
    schema_version: ClassVar[int] = 1
    cloudevent: ClassVar[CloudEventFields] = CloudEventFields(
        id="dead_letter_id", time="received_at"
    )

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
