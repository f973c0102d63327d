"""Call events: FoneStorm's callbacks (``BEGIN``/``END``) and the calls the bridge placed."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import orjson
from pydantic import Field

from bridge.contracts.base import CloudEventFields, VersionedEvent, uuid5

# uuid5 namespace for event ids: the same callback delivered twice gets the same id.
_EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c52-8d4e-4b7e-9a57-3f1f0e2d9c11")
# uuid5 namespace of the ids of the worker's events (CallPlaced, PlaceCallResult).
PLACED_ID_NAMESPACE = uuid.UUID("0b7e8a8e-51b6-4f0e-9d55-3c2f1a0c6d21")
#: CloudEvents ``source`` of the worker's events, and of every ``CallPlaced`` whoever learned of
#: the call (worker or receiver): with :func:`placed_event_id`, one call's event is one event.
WORKER_SOURCE = "/fonestorm-bridge/worker"


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


class CallEvent(VersionedEvent):
    """One FoneStorm call callback (``BEGIN`` or ``END``) as an event."""

    schema_name: ClassVar[str] = "call-event"
    schema_version: ClassVar[int] = 1
    cloudevent: ClassVar[CloudEventFields] = CloudEventFields(
        id="event_id", subject="call_id", time="received_at"
    )

    event_id: str = Field(
        description="Stable id derived from call id, direction and status: a redelivered "
        "callback has the same id, so consumers can de-duplicate."
    )
    call_id: str = Field(max_length=128, description="FoneStorm's unique call identifier (`uid`).")
    account_code: str = Field(max_length=64, description="FoneStorm account code.")
    direction: Direction = Field(description="`INBOUND` or `OUTBOUND`.")
    status: CallStatus = Field(description="`BEGIN` or `END`.")
    call_type: CallType = Field(description="Call type (`VOICE`).")
    from_number: str = Field(max_length=32, description="Caller number as FoneStorm sent it.")
    from_e164: str | None = Field(description="Caller number in E.164, null if not a number.")
    to_number: str = Field(max_length=32, description="Called number as FoneStorm sent it.")
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
        None, ge=0, le=2**31 - 1, description="Billable seconds; set on `END` only."
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
        return call_event_type(self.status)


def call_event_type(status: CallStatus) -> str:
    """CloudEvents type of a call event with ``status``."""
    return _CALL_EVENT_TYPES[status]


_CALL_EVENT_TYPES = {status: f"com.fonestorm.call.{status.value.lower()}" for status in CallStatus}


def call_event_json(fields: Mapping[str, Any]) -> bytes:
    """``CallEvent.model_validate(fields).model_dump_json()``, byte for byte, without the model.

    For fields that are valid already and in the schema's order
    (:func:`bridge.ingest.parsing.event_fields`): orjson writes them for a fraction of what
    building and dumping the model costs every callback. A property test holds the two to the
    same bytes.
    """
    return orjson.dumps(fields, option=orjson.OPT_UTC_Z)


class CallPlaced(VersionedEvent):
    """A call the bridge placed, on the call-events topic (keyed by call id)."""

    schema_name: ClassVar[str] = "call-placed"
    schema_version: ClassVar[int] = 1
    cloudevent: ClassVar[CloudEventFields] = CloudEventFields(
        id="event_id", subject="call_id", time="placed_at"
    )

    event_id: str = Field(description="Stable id of this event (derived from the call id).")
    call_id: str = Field(description="FoneStorm call id.")
    command_id: str = Field(description="The command that placed it.")
    correlation_id: str | None = Field(None, description="From the command.")
    fonenumber: str = Field(description="Our FoneNumber (caller), in E.164 as dialled.")
    to: str = Field(description="Called number, in E.164 as dialled.")
    placed_at: datetime = Field(
        description="When FoneStorm accepted the call (UTC); reconciled from the call's "
        "callbacks, when the command was reported `in_doubt` (the call was created before)."
    )
    reconciled: bool = Field(
        False,
        description="Learned after the command's result, which stands (usually `in_doubt`): "
        "the evidence that the call exists. No second result follows.",
    )

    @property
    def ce_type(self) -> str:
        """CloudEvents type of a placed call."""
        return "com.fonestorm.call.placed"


def call_event_id(call_id: str, direction: Direction, status: CallStatus) -> str:
    """Deterministic event id: the same callback always maps to the same id (a UUID v5)."""
    return uuid5(_EVENT_ID_NAMESPACE, f"{call_id}\x1f{direction.value}\x1f{status.value}")


def placed_event_id(call_id: str) -> str:
    """Event id of the ``CallPlaced`` of ``call_id`` (a UUID v5): the same whoever publishes it."""
    return uuid5(PLACED_ID_NAMESPACE, f"placed|{call_id}")
