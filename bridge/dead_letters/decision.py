"""What a replay does with one dead letter: a pure function, tested as a table.

The dead-letter topic is not trusted, so a replayed record is rebuilt from validated content,
never copied from the dead letter:

* Replayed before (the replay record says ``replayed``): nothing, ``already_replayed``.
* Not signed by the bridge (:mod:`~bridge.dead_letters.integrity`): stays a dead letter.
* Older than the command ledger surely remembers (90% of ``BRIDGE_WORKER__LEDGER_RETENTION``,
  as the worker's ``too_old`` guard): stays a dead letter (``too_old``).
* A callback: its request goes through today's validation
  (:func:`~bridge.dead_letters.revalidate.callback_data`). Accepted, it becomes the
  ``CallEvent`` the receiver would have produced when it came: the dead letter's
  ``received_at``, hence the same ``event_id`` and ``ce_time``, keyed by call id, with the
  receiver's CloudEvents headers. Refused, it stays a dead letter with the new reason.
* A command: its value, parsed as the worker parses it, is written again from the parsed
  command, keyed by its ``command_id``, with the record timestamp it had when it was first
  written (so the worker's ``too_old`` guard and ``not_after`` judge it as they would have)
  and no headers but a valid trace context. The worker's ledger places each ``command_id``
  at most once; one the ledger shows finished (refused by the allow-lists, expired) stays a
  dead letter, since the worker would only answer ``duplicate``.

Every replayed record carries the header ``bridge_replayed_from: <dead_letter_id>``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from pydantic import ValidationError

from bridge.contracts.commands import parse_command
from bridge.contracts.dead_letters import DeadLetter, KafkaRecordRef
from bridge.dead_letters.integrity import Integrity, refusal
from bridge.dead_letters.model import REPLAYED_FROM_HEADER, LedgerView, ReplayRecord
from bridge.dead_letters.revalidate import callback_data
from bridge.errors import CallbackError, InvalidCommand
from bridge.ingest import parsing
from bridge.kafka.cloudevents import cloudevent_headers
from bridge.schema_registry.wire import parse_frame

Outcome = Literal["replayed", "still_invalid", "already_replayed"]
Headers = tuple[tuple[str, bytes], ...]

#: Share of ``BRIDGE_WORKER__LEDGER_RETENTION`` kept as a margin, as the worker's ``too_old``
#: guard keeps it (``bridge.commands.decision.CLOCK_MARGIN_SHARE``; a test holds them equal).
CLOCK_MARGIN_SHARE = 0.1

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_TRACESTATE = re.compile(r"[\x20-\x7e]{1,512}")
#: The only headers of a dead-lettered command that a replay writes again, when well-formed:
#: its trace context (the worker continues the producer's trace).
TRACE_HEADERS = {
    "traceparent": _TRACEPARENT,
    "tracestate": _TRACESTATE,
    "ce_traceparent": _TRACEPARENT,
    "ce_tracestate": _TRACESTATE,
}


@dataclass(frozen=True)
class Outgoing:
    """The record a replay produces."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    #: The record timestamp to write (ms since the epoch); None: when it is produced.
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class ReplayContext:
    """What the decision needs from the settings (and the ledger), and nothing else."""

    call_events: str
    place_call: str
    region: str
    max_body_bytes: int
    ce_source: str
    #: When the replay runs, and the age past which a dead letter is refused (``too_old``).
    now: datetime
    max_age: timedelta
    ledger: LedgerView = field(default_factory=LedgerView)
    #: ``--allow-unsigned``: replay dead letters without a (checkable) signature too.
    allow_unsigned: bool = False
    #: Registry mode: the schema-id headers of a replayed call event and command.
    event_id_headers: tuple[tuple[str, bytes], ...] = ()
    command_id_headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Decision:
    """The outcome for one dead letter; ``outgoing`` is set exactly when it is ``replayed``."""

    letter: DeadLetter
    outcome: Outcome
    what: str = ""
    reason_code: str | None = None
    reason: str | None = None
    outgoing: Outgoing | None = None
    #: What the dead letter's signature showed (:mod:`~bridge.dead_letters.integrity`).
    integrity: Integrity | None = None


def max_age(ledger_retention: float) -> timedelta:
    """The oldest dead letter a replay acts on: as long as the ledger surely remembers."""
    return timedelta(seconds=ledger_retention * (1 - CLOCK_MARGIN_SHARE))


def original_time(letter: DeadLetter) -> datetime:
    """When what was refused first came: a command record's timestamp (when the dead letter
    keeps it), else when the bridge received it."""
    if letter.record is not None and letter.record.timestamp is not None:
        return letter.record.timestamp
    return letter.received_at


def decide(
    letter: DeadLetter,
    previous: ReplayRecord | None,
    context: ReplayContext,
    *,
    integrity: Integrity,
) -> Decision:
    """The decision for ``letter``, given the latest replay record of it (or None) and what
    its signature showed."""
    if previous is not None and previous.outcome == "replayed":
        where = f" to {previous.produced_to}" if previous.produced_to else ""
        return Decision(
            letter,
            "already_replayed",
            what=f"replayed at {previous.replayed_at.isoformat()}{where}",
            integrity=integrity,
        )
    refused = refusal(integrity, letter.source, allow_unsigned=context.allow_unsigned)
    if refused is None:
        refused = _too_old(letter, context)
    if refused is not None:
        decision = _still_invalid(letter, *refused)
    elif letter.source == "callback":
        decision = _callback(letter, context)
    else:
        decision = _command(letter, context)
    return replace(decision, integrity=integrity)


def _too_old(letter: DeadLetter, context: ReplayContext) -> tuple[str, str] | None:
    since = original_time(letter)
    if context.now - since <= context.max_age:
        return None
    return (
        "too_old",
        f"it came at {since.isoformat()}, longer ago than the command ledger surely remembers "
        f"command ids ({context.max_age.total_seconds():g}s of BRIDGE_WORKER__LEDGER_RETENTION), "
        "so whether it was handled since is unknown; not replayed",
    )


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
        time=event.received_at,
        subject=event.ce_subject,
        dataschema=event.schema_id(),
    )
    outgoing = Outgoing(
        topic=context.call_events,
        key=event.call_id.encode(),  # its kafka_key
        value=event.model_dump_json().encode(),
        headers=(*headers, *context.event_id_headers, _replayed_from(letter)),
    )
    what = f"{event.direction.value} {event.status.value} of call {event.call_id}"
    return Decision(letter, "replayed", what=what, outgoing=outgoing)


def trace_headers(record: KafkaRecordRef) -> Headers:
    """The trace context of a dead-lettered command, to write again: of each trace header,
    the line the worker reads (the first with a value), when it is well-formed."""
    if record.header_lines is None:  # a dead letter of a release before them
        chosen = record.headers
    else:
        chosen = {}
        for line in record.header_lines:
            if line.name in TRACE_HEADERS and line.value and line.name not in chosen:
                chosen[line.name] = line.value if line.value_encoding == "utf-8" else ""
    return tuple(
        (name, text.encode("ascii"))
        for name, text in sorted(chosen.items())
        if (pattern := TRACE_HEADERS.get(name)) is not None and pattern.fullmatch(text)
    )


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
        # A framed command is replayed as plain JSON (below), which every worker reads: the
        # frame's schema id was the worker's to check when it came.
        command = parse_command(parse_frame(value).payload)
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
    # Rebuilt, not copied: the key is the command id (its partition, its one owner), the value
    # the command as the worker reads it, the timestamp the original one (the worker's too_old
    # guard reads it), and the headers only what continues the producer's trace.
    headers = trace_headers(record)
    outgoing = Outgoing(
        topic=context.place_call,
        key=command.command_id.encode(),
        value=command.model_dump_json().encode(),
        headers=(*headers, *context.command_id_headers, _replayed_from(letter)),
        timestamp_ms=int(original_time(letter).timestamp() * 1000),
    )
    return Decision(letter, "replayed", what=f"command {command.command_id}", outgoing=outgoing)
