"""A command record as the worker sees it: its identity, and its whole copy for a dead letter."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeAlias

from aiokafka.structs import ConsumerRecord

from bridge.commands.trimming import ELLIPSIS
from bridge.contracts.dead_letters import HeaderLine, KafkaRecordRef

Record: TypeAlias = ConsumerRecord[bytes, bytes]


def source_of(topic: str, partition: int, offset: int) -> str:
    """Identity of one command record."""
    return f"{topic}/{partition}/{offset}"


def written_at(record: Record) -> datetime | None:
    """When the record was written (its Kafka timestamp), if it has one a datetime can hold.

    A producer picks the timestamp, and brokers before Kafka 4.0 take any by default: one past
    the year 9999 is treated as none (it is in the future: no guard needs it).
    """
    stamp = record.timestamp
    if stamp is None or stamp < 0:
        return None
    try:
        return datetime.fromtimestamp(stamp / 1000, UTC)
    except (ValueError, OverflowError):
        return None


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
#: ``max_text`` of each try when Kafka refuses a dead letter even without the command's value:
#: the key and each header cut to as many characters as the callback dead letters' headers,
#: then dropped (a dead letter whose key and headers Kafka refuses is lost otherwise).
DEAD_LETTER_CUTS = (1024, 0)
#: Headers a dead letter keeps at most once its key and headers are cut (see ``max_text``).
MAX_CUT_HEADERS = 32


@dataclass(frozen=True)
class Copy:
    """How much of a command record a dead letter keeps: :func:`record_ref`'s arguments."""

    max_value: int | None
    max_text: int | None = None
    #: The ``headers`` mapping too: one value per name, which ``header_lines`` has anyway.
    mapping: bool = True


#: The copies a dead letter tries in turn, each when Kafka refused the one before. The mapping
#: goes first: it repeats ``header_lines``, what `dead-letters show` and `replay` read, and kept
#: it doubles what the headers weigh. Then the value, then the key and headers are cut, then
#: dropped.
DEAD_LETTER_COPIES = (
    Copy(MAX_DEAD_LETTER_VALUE),
    Copy(MAX_DEAD_LETTER_VALUE, mapping=False),
    Copy(0, mapping=False),
    *(Copy(0, max_text, mapping=False) for max_text in DEAD_LETTER_CUTS),
)


def _cut(text: str | None, limit: int | None) -> str | None:
    if text is None or limit is None or len(text) <= limit:
        return text
    return text[:limit] + ELLIPSIS if limit else None


def _line(name: str, raw: bytes | None, max_text: int | None) -> HeaderLine:
    text, encoding = _text(raw)
    return HeaderLine(
        name=_cut(name, max_text) or "",
        value=_cut(text, max_text),
        value_encoding=encoding,  # type: ignore[arg-type]
    )


def record_ref(
    record: Record,
    *,
    max_value: int | None = MAX_DEAD_LETTER_VALUE,
    max_text: int | None = None,
    mapping: bool = True,
) -> KafkaRecordRef:
    """The record, for a dead letter; its value cut at ``max_value`` bytes (``0``: dropped).

    With ``max_text``, the key and every header name and value are cut to that many characters
    (``0``: the key and headers dropped) and at most :data:`MAX_CUT_HEADERS` headers are kept:
    a key or headers alone can make a dead letter larger than Kafka takes. Without ``mapping``
    the headers are in ``header_lines`` only.
    """
    key = _cut(_text(record.key)[0], max_text)
    raw = record.value
    truncated = raw is not None and max_value is not None and len(raw) > max_value
    if truncated and raw is not None and max_value is not None:
        raw = raw[:max_value] or None
    value, encoding = _text(raw)
    most = None if max_text is None else MAX_CUT_HEADERS if max_text else 0
    headers: dict[str, str] = {}
    for name, v in (record.headers or ()) if mapping else ():
        if most is not None and len(headers) >= most:
            break
        headers[_cut(name, max_text) or ""] = _cut(_text(v)[0], max_text) or ""
    # The mapping keeps one value per name, as it always did; the lines keep every header,
    # in order, exactly: a repeated name, bytes that are not UTF-8, a header without a value.
    lines = None
    if most != 0:
        lines = [_line(name, v, max_text) for name, v in islice(record.headers or (), most)]
    return KafkaRecordRef(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key,
        value=value,
        value_encoding=encoding,  # type: ignore[arg-type]
        value_truncated=truncated,
        headers=headers,
        header_lines=lines,
        timestamp=written_at(record),
    )


def cut_note(record: Record, max_text: int) -> str:
    """What :func:`record_ref` with ``max_text`` (and no mapping) cut, for the dead letter's
    reason."""
    what = f"cut to {max_text} characters each" if max_text else "dropped"
    return (
        f"[key ({len(record.key or b'')} bytes) and headers ({len(record.headers or ())}) {what}"
        + (f", at most {MAX_CUT_HEADERS} headers kept, in header_lines only" if max_text else "")
        + ", to fit Kafka's record size limit]"
    )


#: The reason's note when the headers are in ``header_lines`` only, none of them cut.
LINES_ONLY_NOTE = "[headers in header_lines only, to fit Kafka's record size limit]"


def dead_letter_copies(record: Record) -> Iterator[tuple[KafkaRecordRef, str | None]]:
    """The record's copies for its dead letter (:data:`DEAD_LETTER_COPIES`), from the whole
    down, each with the note its reason gets (None: nothing left out but the value, which
    ``value_truncated`` says). A copy the same as the one before is skipped: Kafka would
    refuse it again. Made one at a time, as each is needed."""
    last: KafkaRecordRef | None = None
    for copy in DEAD_LETTER_COPIES:
        ref = record_ref(
            record, max_value=copy.max_value, max_text=copy.max_text, mapping=copy.mapping
        )
        if ref == last:
            continue
        last = ref
        if copy.max_text is not None:
            yield ref, cut_note(record, copy.max_text)
        elif not copy.mapping and record.headers:
            yield ref, LINES_ONLY_NOTE
        else:
            yield ref, None


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
