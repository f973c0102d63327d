"""What a replay does with one dead letter: a pure function, tested as a table.

* Replayed before (the replay record says ``replayed``): nothing, ``already_replayed``.
* A callback: its request goes through today's validation
  (:func:`~bridge.deadletters.revalidate.callback_data`). Accepted, it becomes the
  ``CallEvent`` the receiver would have produced when it came: the dead letter's
  ``received_at``, hence the same ``event_id`` and ``ce_time``, keyed by call id, with the
  receiver's CloudEvents headers. Refused, it stays a dead letter with the new reason.
* A command: its original value, parsed as the worker parses it, goes back onto the command
  topic with its original key and headers. The worker's ledger places each ``command_id`` at
  most once, so even a command seen before is never placed twice; one the ledger shows
  finished (refused by the allow-lists, expired) stays a dead letter, since the worker would
  only answer ``duplicate``.

Every replayed record carries the header ``bridge_replayed_from: <dead_letter_id>``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from bridge.contracts.commands import parse_command
from bridge.contracts.dead_letters import DeadLetter
from bridge.deadletters.model import REPLAYED_FROM_HEADER, LedgerView, ReplayRecord
from bridge.deadletters.revalidate import callback_data
from bridge.errors import CallbackError, InvalidCommand
from bridge.ingest import parsing
from bridge.kafka.cloudevents import cloudevent_headers

Outcome = Literal["replayed", "still_invalid", "already_replayed"]
Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Outgoing:
    """The record a replay produces."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


@dataclass(frozen=True)
class ReplayContext:
    """What the decision needs from the settings (and the ledger), and nothing else."""

    call_events: str
    place_call: str
    region: str
    max_body_bytes: int
    ce_source: str
    ledger: LedgerView = field(default_factory=LedgerView)


@dataclass(frozen=True)
class Decision:
    """The outcome for one dead letter; ``outgoing`` is set exactly when it is ``replayed``."""

    letter: DeadLetter
    outcome: Outcome
    what: str = ""
    reason_code: str | None = None
    reason: str | None = None
    outgoing: Outgoing | None = None


def decide(letter: DeadLetter, previous: ReplayRecord | None, context: ReplayContext) -> Decision:
    """The decision for ``letter``, given the latest replay record of it (or None)."""
    if previous is not None and previous.outcome == "replayed":
        where = f" to {previous.produced_to}" if previous.produced_to else ""
        return Decision(
            letter,
            "already_replayed",
            what=f"replayed at {previous.replayed_at.isoformat()}{where}",
        )
    if letter.source == "callback":
        return _callback(letter, context)
    return _command(letter, context)


def _still_invalid(letter: DeadLetter, code: str, reason: str, what: str = "") -> Decision:
    return Decision(letter, "still_invalid", what=what, reason_code=code, reason=reason)


def _replayed_from(letter: DeadLetter) -> tuple[str, bytes]:
    return (REPLAYED_FROM_HEADER, letter.dead_letter_id.encode())


def _callback(letter: DeadLetter, context: ReplayContext) -> Decision:
    request = letter.request
    if request is None:
        return _still_invalid(letter, "no_request", "the dead letter keeps no HTTP request")
    try:
        data = callback_data(
            request, reason_code=letter.reason_code, max_body_bytes=context.max_body_bytes
        )
        command_id, correlation_id = context.ledger.correlations.get(data.uid, (None, None))
        event = parsing.to_event(
            data,
            region=context.region,
            received_at=letter.received_at,
            command_id=command_id,
            correlation_id=correlation_id,
        )
    except CallbackError as exc:
        return _still_invalid(letter, exc.code, exc.message)
    except ValidationError as exc:
        return _still_invalid(letter, "invalid_fields", parsing.describe_errors(exc))
    except Exception as exc:  # noqa: BLE001 - as in the receiver: a bug costs one, not the run
        return _still_invalid(
            letter, "internal_error", f"the bridge failed on this callback ({exc!r})"
        )
    headers = cloudevent_headers(
        event_id=event.ce_id,
        source=context.ce_source,
        ce_type=event.ce_type,
        time=event.ce_time,
        subject=event.ce_subject,
        dataschema=event.schema_id(),
    )
    outgoing = Outgoing(
        topic=context.call_events,
        key=event.kafka_key.encode(),
        value=event.model_dump_json().encode(),
        headers=(*headers, _replayed_from(letter)),
    )
    what = f"{event.direction.value} {event.status.value} of call {event.call_id}"
    return Decision(letter, "replayed", what=what, outgoing=outgoing)


def _command(letter: DeadLetter, context: ReplayContext) -> Decision:
    record = letter.record
    if record is None or record.value is None:
        return _still_invalid(letter, "no_value", "the dead letter keeps no command value")
    if record.value_truncated:
        return _still_invalid(
            letter,
            "value_truncated",
            "the command's value was cut when it was dead-lettered, so it cannot be replayed",
        )
    try:
        value = (
            record.value.encode("utf-8")
            if record.value_encoding == "utf-8"
            else base64.b64decode(record.value, validate=True)
        )
    except (binascii.Error, ValueError):
        return _still_invalid(letter, "invalid_command", "the base64 value does not decode")
    try:
        command = parse_command(value)
    except InvalidCommand as exc:
        return _still_invalid(letter, exc.code, exc.message)
    finished = context.ledger.finished.get(command.command_id)
    if finished is not None:
        # The worker would only answer `duplicate`: say so now, and how to place it after all.
        return _still_invalid(
            letter,
            "already_finished",
            f"the worker finished command {command.command_id} as {finished} and remembers it "
            "(BRIDGE_WORKER__LEDGER_RETENTION): a copy gets `duplicate`, no call; to place it, "
            "produce it with a new command_id",
        )
    # The key as the dead letter keeps it: the command id as text in every record the bridge
    # documents (a key that was not UTF-8 is kept in base64 without a marker, and goes back so).
    key = record.key.encode("utf-8") if record.key is not None else None
    headers = tuple(
        (name, text.encode("utf-8"))
        for name, text in record.headers.items()
        if name != REPLAYED_FROM_HEADER
    )
    outgoing = Outgoing(
        topic=context.place_call, key=key, value=value, headers=(*headers, _replayed_from(letter))
    )
    return Decision(letter, "replayed", what=f"command {command.command_id}", outgoing=outgoing)
