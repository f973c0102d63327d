"""Place-call commands in and their results out: the versioned models and command parsing."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from bridge.contracts.base import CloudEventFields, VersionedEvent, uuid5
from bridge.contracts.calls import PLACED_ID_NAMESPACE
from bridge.errors import InvalidCommand

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=1024)]


class PlaceCallCommand(VersionedEvent):
    """Ask the bridge to place one call through FoneStorm.

    Unknown fields are ignored, not refused: an upstream producer may add optional fields
    within v1 (the additive evolution the README promises) before the bridge knows them.
    """

    # extra="ignore": see the docstring; frozen as every published model.
    model_config = ConfigDict(extra="ignore", frozen=True, use_enum_values=False)

    schema_name: ClassVar[str] = "place-call-command"
    schema_version: ClassVar[int] = 1
    # The command id is the id (a command produced twice is one command) and the key (every
    # copy of a command on one partition, so one owner).
    cloudevent: ClassVar[CloudEventFields] = CloudEventFields(id="command_id", subject="command_id")

    command_id: str = Field(
        min_length=1,
        max_length=128,
        description="Idempotency key, printable ASCII, at most 128 characters: the bridge "
        "places at most one call per command_id.",
    )
    fonenumber: str = Field(
        min_length=1,
        max_length=32,
        description="Our FoneNumber to call from, written as `to` is.",
    )
    to: str = Field(
        min_length=1,
        max_length=32,
        description="Number to call: international (`+44 20 7946 0958`) or national in the "
        "bridge's default region; only digits, spaces, `-`, `.`, `/`, `(`, `)` and a leading "
        "`+` (an extension or dial string is `rejected`). Sent to FoneStorm in E.164.",
    )
    tts: str | None = Field(None, max_length=4000, description="Text to speech message.")
    correlation_id: str | None = Field(
        None, max_length=200, description="Caller's id, copied to the result and every event."
    )
    not_after: AwareDatetime | None = Field(
        None,
        description="Do not place the call after this time (result `expired`): an RFC 3339 "
        "date-time with its offset, e.g. `2026-12-06T17:30:00Z`.",
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Passed through to the result unchanged: at most 32 entries, keys of at "
        "most 64 and values of at most 1,024 characters.",
    )

    @field_validator("command_id")
    @classmethod
    def _printable_ascii(cls, value: str) -> str:
        # It travels as FoneStorm's Idempotency-Key header and in log lines.
        for position, char in enumerate(value):
            if not " " <= char <= "~":
                raise ValueError(f"must be printable ASCII: {char!r} at position {position} is not")
        return value

    @field_validator("not_after", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        # pydantic would also read a number (or a string of digits) as Unix seconds or
        # milliseconds, guessing which by its size: a deadline on a call is not guessed.
        if isinstance(value, (int, float, str)) and not (
            isinstance(value, str) and _RFC3339.fullmatch(value)
        ):
            raise ValueError(
                "must be an RFC 3339 date-time with an offset, e.g. 2026-12-06T17:30:00Z"
            )
        return value

    @property
    def ce_type(self) -> str:
        """CloudEvents type of a command."""
        return "com.fonestorm.bridge.place-call"


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
    cloudevent: ClassVar[CloudEventFields] = CloudEventFields(
        id=None, subject="command_id", time="finished_at"
    )

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

    @property
    def ce_id(self) -> str:
        """One id per command and outcome: a result published again has the same id."""
        return uuid5(PLACED_ID_NAMESPACE, f"{self.command_id}|{self.status.value}")


def parse_command(value: bytes | None) -> PlaceCallCommand:
    """The command in a record's ``value``, or :class:`InvalidCommand` saying what is wrong."""
    if value is None:
        raise InvalidCommand("record has no value")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCommand("value is not valid UTF-8") from None
    try:
        return PlaceCallCommand.model_validate_json(text)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise InvalidCommand(f"value is not valid JSON: {exc.errors()[0]['msg']}") from None
        errors = exc.errors(include_url=False)
        parts = [
            f"{'.'.join(_cut(str(p)) for p in err['loc']) or 'value'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in errors[:MAX_NAMED_ERRORS]
        ]
        if len(errors) > MAX_NAMED_ERRORS:
            parts.append(f"and {len(errors) - MAX_NAMED_ERRORS} more errors")
        raise InvalidCommand("; ".join(parts)) from None


#: Errors a refusal names at most: each names its field, and a metadata key is the sender's
#: text, so thousands of them would make a reason larger than Kafka takes in a dead letter.
MAX_NAMED_ERRORS = 10
#: Characters of a field name (a metadata key) a refusal quotes: one more than a valid key has.
_MAX_QUOTED = 65


def _cut(name: str) -> str:
    return name if len(name) <= _MAX_QUOTED else name[:_MAX_QUOTED] + "\u2026"
