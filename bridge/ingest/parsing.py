"""FoneStorm callback data: decoding the three delivery methods and mapping to :class:`CallEvent`.

Pure functions only (no I/O), so every rule here is unit-tested without a server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bridge.contracts.calls import (
    CallEvent,
    CallStatus,
    CallType,
    Direction,
    Disposition,
    call_event_id,
)
from bridge.errors import InvalidCallback, MalformedCallback, UnsupportedMediaType
from bridge.phone import to_e164

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"

#: Bounds of callback fields (also in the CallEvent schema): a FoneStorm uid is a UUID, numbers
#: are at most 15 digits plus formatting, billable seconds fit a signed 32-bit integer.
MAX_UID = 128
MAX_NUMBER = 32
MAX_SECONDS = 2**31 - 1

# A GET template token FoneStorm left unreplaced because the field has no value, e.g.
# ``{{disposition}}`` on a BEGIN callback.
_UNREPLACED_TOKEN = re.compile(r"^\{\{\s*[A-Za-z_]+\s*\}\}$")


class CallbackData(BaseModel):
    """The callback fields FoneStorm documents, validated."""

    # coerce_numbers_to_str: JSON may carry a number where the API documents a string (FoneStorm
    # sends numbers as strings or numbers); refusing it would lose the call's event.
    model_config = ConfigDict(
        extra="ignore", str_strip_whitespace=True, frozen=True, coerce_numbers_to_str=True
    )

    uid: str = Field(min_length=1, max_length=MAX_UID)
    account_code: str = Field(min_length=1, max_length=64)
    direction: Direction
    status: CallStatus
    from_: str = Field(alias="from", min_length=1, max_length=MAX_NUMBER)
    to: str = Field(min_length=1, max_length=MAX_NUMBER)
    type: CallType
    disposition: str | None = Field(None, max_length=64)
    billable_seconds: int | None = Field(None, ge=0, le=MAX_SECONDS)

    @field_validator("uid", "account_code", "from_", "to", "disposition", mode="before")
    @classmethod
    def _no_decimals(cls, value: Any) -> Any:
        # A whole JSON number reads as its digits; a decimal one has no one text (0.0 is "0"
        # to pydantic-core's JSON parser, "0.0" to Python), so it is refused, on both paths.
        if isinstance(value, float):
            raise ValueError("must be a string, not a decimal number")  # noqa: TRY004 - pydantic reports ValueError
        return value

    @field_validator("billable_seconds", mode="before")
    @classmethod
    def _whole_seconds(cls, value: Any) -> Any:
        # Strict: JSON true is not 1, and "1e3" or "12.5" are not whole seconds. Form and GET
        # values are strings of digits; JSON may send a number.
        if value is None:
            return value
        if isinstance(value, bool):
            raise ValueError("must be a whole number of seconds, not a boolean")  # noqa: TRY004 - pydantic reports ValueError
        if isinstance(value, str):
            if not value.isascii() or not value.isdigit() or len(value) > len(str(MAX_SECONDS)):
                raise ValueError(f"must be a whole number of seconds from 0 to {MAX_SECONDS}")
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @model_validator(mode="after")
    def _checks(self) -> CallbackData:
        # One Python call rather than a validator per field: pydantic-core calling back into
        # Python per field costs more than the model's own validation.
        # A FieldError still names its field (describe_errors).
        disposition = self.disposition
        texts = (self.uid, self.account_code, self.from_, self.to, disposition or "")
        # These become Kafka keys, headers and log fields: no control characters.
        if not "".join(texts).isprintable():
            for name, value in zip(_TEXT_FIELDS, texts, strict=True):
                _printable(name, value)
        if disposition is not None:
            try:
                split_disposition(disposition)
            except ValueError as exc:
                raise FieldError("disposition", str(exc)) from None
        elif self.status is CallStatus.END:
            raise ValueError("an END callback must carry a disposition")
        return self


class FieldError(ValueError):
    """A value error about one field, raised by a model validator (which pydantic cannot tie
    to a field): :func:`describe_errors` names ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# CallbackData's text fields by their FoneStorm names, in the order _checks reads them.
_TEXT_FIELDS = ("uid", "account_code", "from", "to", "disposition")


def _printable(field: str, value: str) -> None:
    # isprintable() over the whole string is what every valid callback pays; the loop only
    # names the culprit.
    for position, char in enumerate(value):
        if not char.isprintable():
            raise FieldError(field, f"must be printable: {char!r} at position {position} is not")


_DISPOSITIONS = {d.value: d for d in Disposition}


def split_disposition(raw: str) -> tuple[Disposition, str | None]:
    """``FAILED:503`` → ``(FAILED, "503")``; other values must be a known disposition."""
    name, sep, code = raw.partition(":")
    disposition = _DISPOSITIONS.get(name)  # Disposition(name) costs a microsecond
    if disposition is None:
        allowed = ", ".join(d.value for d in Disposition)
        raise ValueError(f"unknown disposition {raw!r} (expected one of {allowed})")
    if sep and disposition is not Disposition.FAILED:
        raise ValueError(f"only FAILED carries a code, got {raw!r}")
    if disposition is Disposition.FAILED and sep and not code:
        raise ValueError(f"FAILED: without a code in {raw!r}")
    return disposition, (code or None)


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        stripped = value.strip()
        if "{{" not in stripped:
            return bool(stripped)
        return not _UNREPLACED_TOKEN.match(stripped)
    return True


def clean_fields(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Drop absent values (empty, unreplaced ``{{token}}``); the first occurrence of a key wins."""
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key not in fields and _present(value):
            fields[key] = value
    return fields


def decode_utf8(body: bytes, what: str) -> str:
    """Strict UTF-8 decoding; anything else is a malformed request."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedCallback(f"{what} is not valid UTF-8 (byte {exc.start})") from None


#: The callback's phone-number fields.
_NUMBER_FIELDS = ("from", "to")


def parse_query(raw: str | bytes, what: str = "query string") -> dict[str, Any]:
    """Fields of a query string or form body, percent-decoded as strict UTF-8."""
    text = raw if isinstance(raw, str) else decode_utf8(raw, what)
    if "%" not in text and "+" not in text:
        # Nothing to decode (FoneStorm's usual query): parse_qsl's own splitting, without its
        # per-field unquoting, and clean_fields inlined; a property test holds the two to the
        # same fields.
        fields: dict[str, Any] = {}
        for part in text.split("&"):
            name, _, value = part.partition("=")
            if part and name not in fields and _present(value):
                fields[name] = value
        return fields
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise MalformedCallback(f"{what} has percent-encoded bytes that are not UTF-8") from None
    fields = clean_fields(pairs)
    for number in _NUMBER_FIELDS:
        # A sender that fills the template without percent-encoding sends +44... as is, and a
        # query reads "+" as a space; a space in front of a number is never meant as one.
        given = fields.get(number)
        if isinstance(given, str) and given[:1] == " " and given[1:2].isdigit():
            fields[number] = "+" + given[1:]
    return fields


def parse_json(body: bytes) -> dict[str, Any]:
    """Fields of a JSON object body."""
    text = decode_utf8(body, "body")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedCallback(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        # json's C scanner recurses per nesting level: "[" * 50000 is not a 500.
        raise MalformedCallback("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        # An integer of more than 4,300 digits (CPython's int conversion limit).
        raise MalformedCallback(f"body is not acceptable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidCallback(f"JSON body must be an object, got {type(data).__name__}")
    return clean_fields(data.items())


def parse_post(content_type: str, charset: str | None, body: bytes) -> dict[str, Any]:
    """Fields of a POST body by its content type (form or JSON)."""
    if charset is not None and charset.lower().replace("_", "-") not in {"utf-8", "utf8"}:
        raise UnsupportedMediaType(f"charset {charset!r} is not supported; send UTF-8")
    if content_type == JSON_CONTENT_TYPE:
        return parse_json(body)
    if content_type == FORM_CONTENT_TYPE:
        return parse_query(body, "form body")
    shown = content_type or "none"
    raise UnsupportedMediaType(
        f"content type {shown!r} is not supported; use {JSON_CONTENT_TYPE} or {FORM_CONTENT_TYPE}"
    )


def validate_post(content_type: str, charset: str | None, body: bytes) -> CallbackData:
    """Decode and validate a POST body; raises the same errors as ``validate(parse_post(...))``.

    A JSON body goes from bytes straight into the model (pydantic-core parses it in Rust, cheaper
    than ``json.loads``, cleaning and validating). Whatever that refuses, and any
    body with a ``{{`` that cleaning might drop as an unreplaced token, takes the exact path,
    which names the problem; so only the cost differs, never the answer.
    """
    if (
        content_type == JSON_CONTENT_TYPE
        and (charset is None or charset.lower().replace("_", "-") in {"utf-8", "utf8"})
        and b"{{" not in body
    ):
        try:
            return CallbackData.model_validate_json(body)
        except ValidationError:
            pass
    return validate(parse_post(content_type, charset, body))


def describe_errors(exc: ValidationError) -> str:
    """One line naming every invalid field, in FoneStorm's field names."""
    parts = []
    for err in exc.errors(include_url=False):
        error = err.get("ctx", {}).get("error")
        if isinstance(error, FieldError):
            field = error.field
        else:
            field = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    return "; ".join(parts)


def validate(fields: Mapping[str, Any]) -> CallbackData:
    """Validate decoded fields, or raise :class:`InvalidCallback` naming what is wrong."""
    try:
        return CallbackData.model_validate(fields)
    except ValidationError as exc:
        raise InvalidCallback(describe_errors(exc)) from None


def to_event(
    data: CallbackData,
    *,
    region: str,
    received_at: datetime,
    command_id: str | None = None,
    correlation_id: str | None = None,
) -> CallEvent:
    """Map validated callback data to the ``CallEvent`` v1."""
    return CallEvent.model_validate(
        event_fields(
            data,
            region=region,
            received_at=received_at,
            command_id=command_id,
            correlation_id=correlation_id,
        )
    )


def event_fields(
    data: CallbackData,
    *,
    region: str,
    received_at: datetime,
    command_id: str | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """The ``CallEvent`` v1 fields of validated callback data, in the schema's order.

    What the receiver serialises with :func:`~bridge.contracts.calls.call_event_json`: every
    value is checked already (``CallbackData`` bounds them), so building the model on each
    callback would only check them again.
    """
    disposition, failure_code = (
        split_disposition(data.disposition) if data.disposition is not None else (None, None)
    )
    direction = data.direction
    ours = data.from_ if direction is Direction.OUTBOUND else data.to
    return {
        "event_id": call_event_id(data.uid, direction, data.status),
        "call_id": data.uid,
        "account_code": data.account_code,
        "direction": direction,
        "status": data.status,
        "call_type": data.type,
        "from_number": data.from_,
        "from_e164": to_e164(data.from_, region),
        "to_number": data.to,
        "to_e164": to_e164(data.to, region),
        "fonenumber": ours,
        "fonenumber_e164": to_e164(ours, region),
        "disposition": disposition,
        "failure_code": failure_code,
        "billable_seconds": data.billable_seconds,
        "received_at": received_at,
        "command_id": command_id,
        "correlation_id": correlation_id,
    }
