"""Static definitions of the FoneStorm sandbox: outcomes by number, faults, request bodies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

Direction = Literal["OUTBOUND", "INBOUND"]
NotifyKind = Literal["send_notify", "receive_notify"]
DeliveryResult = Literal["pending", "delivered", "rejected", "failed", "no_registration", "dropped"]

PhoneNumber = Annotated[str, Field(pattern=r"^\+?\d{10,15}$")]


@dataclass(frozen=True)
class Outcome:
    """How a simulated call ends."""

    disposition: str
    billable_seconds: int
    description: str
    #: False simulates a lost END callback: BEGIN arrives, END never does.
    end_delivered: bool = True
    #: False: create-call is answered ``refusal`` (status, error code) and no call exists.
    accepted: bool = True
    refusal: tuple[int, str] = (422, "invalid_destination")

    def to_json(self) -> dict[str, Any]:
        """JSON form for the introspection endpoints."""
        return {
            "disposition": self.disposition,
            "billable_seconds": self.billable_seconds,
            "end_delivered": self.end_delivered,
        }


DEFAULT_OUTCOME = Outcome("ANSWERED", 30, "answered, 30 billable seconds")

#: Outcome of an outbound call by the last four digits of ``to``; anything else is
#: :data:`DEFAULT_OUTCOME`.
OUTCOMES_BY_SUFFIX: dict[str, Outcome] = {
    "0001": Outcome("NO_ANSWER", 0, "not answered"),
    "0002": Outcome("BUSY", 0, "busy"),
    "0003": Outcome("REJECTED", 0, "rejected by the callee"),
    "0004": Outcome("CANCEL", 0, "cancelled before answer"),
    "0005": Outcome("FAILED:503", 0, "failed in the network"),
    "0006": Outcome("ANSWERED", 125, "answered, 125 billable seconds"),
    "0007": Outcome("ANSWERED", 30, "BEGIN only: the END callback is lost", end_delivered=False),
    "0008": Outcome(
        "",
        0,
        "create-call answered 403 `forbidden_destination`",
        accepted=False,
        refusal=(403, "forbidden_destination"),
    ),
    "0009": Outcome("", 0, "create-call answered 422 `invalid_destination`", accepted=False),
}


def _outcome_table() -> str:
    rows = [
        "| `to` ends in | Result | END `disposition` | `billable_seconds` |",
        "|---|---|---|---|",
    ]
    for suffix, outcome in [*OUTCOMES_BY_SUFFIX.items(), ("(other)", DEFAULT_OUTCOME)]:
        shown = f"`{suffix}`" if suffix.isdigit() else suffix
        if outcome.accepted:
            end = f"`{outcome.disposition}`" if outcome.end_delivered else "(none)"
            seconds = str(outcome.billable_seconds) if outcome.end_delivered else "(none)"
        else:
            end = seconds = "(no call)"
        rows.append(f"| {shown} | {outcome.description} | {end} | {seconds} |")
    return "\n".join(rows)


#: Markdown version of the outcome table, for the README.
OUTCOME_TABLE: str = _outcome_table()

#: Valid ``disposition`` values (``FAILED:XXX`` carries a SIP-like status code).
DISPOSITION_PATTERN = r"^(ANSWERED|NO_ANSWER|BUSY|CANCEL|REJECTED|FAILED:\d{3})$"


def outcome_for(to: str) -> Outcome:
    """The simulated outcome of an outbound call to ``to``."""
    return OUTCOMES_BY_SUFFIX.get(re.sub(r"\D", "", to)[-4:], DEFAULT_OUTCOME)


def number_key(number: str) -> str:
    """Registration key: digits only, a leading US country code dropped (+1321… = 321…)."""
    digits = re.sub(r"\D", "", number)
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


class Faults(BaseModel):
    """Faults injected into the ``/v2`` API (``GET``/``POST``/``DELETE /_sandbox/faults``)."""

    model_config = ConfigDict(extra="forbid")

    latency: float = Field(0.0, ge=0)
    error_rate: float = Field(0.0, ge=0, le=1)
    fail_next: int = Field(0, ge=0)
    fail_status: int = Field(500, ge=400, le=599)
    rate_limit_next: int = Field(0, ge=0)
    #: Seconds, or a string sent verbatim (an HTTP-date); ``None`` sends no header.
    retry_after: float | str | None = 1.0
    timeout_next: int = Field(0, ge=0)
    timeout_seconds: float = Field(30.0, gt=0)
    fail_after_create_next: int = Field(0, ge=0)
    #: Answer 200 after creating the call, but close the connection halfway through the body.
    break_body_after_create_next: int = Field(0, ge=0)
    #: While true, API requests wait (whole body received) until it is set false: tests use it
    #: to make the timing of a rebalance or an outage exact. ``GET /_sandbox/held`` counts them.
    hold: bool = False
    #: While true, every API request is answered 401, as when FoneStorm revokes the token.
    unauthorized: bool = False


@dataclass(frozen=True)
class InjectedFault:
    """What the next API request suffers instead of being processed."""

    kind: Literal["hang", "fail", "rate_limit"]
    status: int
    seconds: float = 0.0
    retry_after: str | None = None


class CreateCallBody(BaseModel):
    """Body of ``POST /calls``."""

    fonenumber: PhoneNumber
    to: PhoneNumber
    tts: str | None = None


class NotifyBody(BaseModel):
    """Body of ``POST /calls/send_notify`` and ``/calls/receive_notify``."""

    fonenumber: PhoneNumber
    method: str = Field(pattern="^(GET|POST|JSON)$")
    url: str
    url_username: str | None = None
    url_password: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL")
        return value

    @field_validator("url_username")
    @classmethod
    def _no_colon(cls, value: str | None) -> str | None:
        if value is not None and ":" in value:
            raise ValueError("a basic-auth username cannot contain ':' (RFC 7617)")
        return value


class InboundBody(BaseModel):
    """Body of ``POST /_sandbox/inbound``."""

    model_config = ConfigDict(extra="forbid")

    caller: PhoneNumber = Field(alias="from")
    to: PhoneNumber
    disposition: str | None = Field(None, pattern=DISPOSITION_PATTERN)
    billable_seconds: int | None = Field(None, ge=0)
