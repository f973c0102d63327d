"""How ``list`` and ``show`` print dead letters: pure text formatting, tested as tables.

Every field is hostile input: each goes through :func:`~bridge.dead_letters.escaping.escape`,
so the only control character printed is the newline between lines (and inside a decoded body).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from bridge.contracts.dead_letters import DeadLetter, HeaderLine, KafkaRecordRef
from bridge.dead_letters.escaping import escape
from bridge.dead_letters.integrity import Integrity
from bridge.dead_letters.model import Entry, ReplayRecord

#: Characters of the reason shown in the table (``show`` prints it whole).
REASON_CHARS = 72
#: Bytes of a binary body or value shown in hex by ``show``.
HEX_BYTES = 1024
_HEADERS = ("ID", "RECEIVED (UTC)", "SOURCE", "REASON CODE", "HTTP/RECORD", "REPLAY", "REASON")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    sort_key: tuple[float, int, int]
    cells: tuple[str, ...]


def replay_state(record: ReplayRecord | None) -> str:
    """The REPLAY column: what the last replay did (``-``: never replayed)."""
    if record is None:
        return "-"
    return "replayed" if record.outcome == "replayed" else "still invalid"


def _short(text: str, limit: int = REASON_CHARS) -> str:
    line = escape(" ".join(text.split()))
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _origin(letter: DeadLetter) -> str:
    """HTTP status of a callback, or the command record it was (``topic[partition]@offset``)."""
    if letter.record is not None:
        record = letter.record
        return f"{record.topic}[{record.partition}]@{record.offset}"
    return str(letter.http_status) if letter.http_status is not None else "-"


def row(entry: Entry, replay: ReplayRecord | None) -> Row:
    """The table row of one entry; sorted by when it was received (unreadable: written)."""
    letter = entry.letter
    if letter is None:
        cells = (
            f"(unreadable {entry.where})",
            _when(datetime.fromtimestamp(entry.timestamp_ms / 1000, UTC)),
            "?", "unreadable", "-", "-", _short(entry.error or ""),
        )  # fmt: skip
        return Row((entry.timestamp_ms / 1000, entry.partition, entry.offset), cells)
    cells = (
        escape(letter.dead_letter_id),
        _when(letter.received_at),
        letter.source,
        escape(letter.reason_code),
        escape(_origin(letter)),
        replay_state(replay),
        _short(letter.reason),
    )
    return Row((letter.received_at.timestamp(), entry.partition, entry.offset), cells)


def table(rows: Iterable[Row]) -> str:
    """Aligned columns, oldest first (newest last), and a count."""
    ordered = sorted(rows, key=lambda r: r.sort_key)
    lines = [_HEADERS, *(r.cells for r in ordered)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADERS) - 1)]
    text = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]])
        for line in lines
    ]
    unreadable = sum(1 for r in ordered if r.cells[3] == "unreadable")
    count = f"{len(ordered)} dead letter{'' if len(ordered) == 1 else 's'}"
    if unreadable:
        count += f" ({unreadable} unreadable)"
    return "\n".join([*text, count])


def json_line(entry: Entry, replay: ReplayRecord | None) -> str:
    """One dead letter as a JSON line (``list --json``): where it is, its replay and itself."""
    data: dict[str, object] = {"partition": entry.partition, "offset": entry.offset}
    if entry.letter is None:
        data["unreadable"] = entry.error
    else:
        data["replay"] = replay.model_dump(mode="json") if replay is not None else None
        data["dead_letter"] = entry.letter.model_dump(mode="json")
    # ASCII: every other character (controls included) as a JSON escape, still valid JSON.
    return escape(json.dumps(data, ensure_ascii=True))


def decoded(raw: bytes) -> str:
    """Bytes for people: pretty JSON, plain text, or hex when they are not UTF-8 text."""
    return escape(_decoded(raw), newlines=True)


def _decoded(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not _CONTROL.search(text):
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            return text
    shown = raw[:HEX_BYTES]
    lines = [shown[i : i + 32].hex(" ") for i in range(0, len(shown), 32)]
    more = f"\n… {len(raw) - HEX_BYTES} more bytes" if len(raw) > HEX_BYTES else ""
    return "(binary, shown in hex)\n" + "\n".join(lines) + more


def _blob(text: str, encoding: str) -> bytes | None:
    if encoding == "utf-8":
        return text.encode("utf-8")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _section(title: str, raw: bytes | None, encoding: str, cut: bool) -> list[str]:
    if raw is None:
        return [f"{title}: ({encoding} that does not decode)"]
    note = f"{len(raw)} bytes, {encoding} in the record" + (", cut" if cut else "")
    return [f"{title} ({note}):", decoded(raw) if raw else "(empty)"]


def _query_fields(query: str) -> list[str]:
    pairs = parse_qsl(query, keep_blank_values=True, errors="replace")
    return [f"  {escape(name)} = {escape(value)}" for name, value in pairs]


_SIGNATURE = {
    "signed": "verified (written by the bridge)",
    "unsigned": "none (replayed only with --allow-unsigned)",
    "no_key": "not checked: this source's signing key is not set here",
    "bad_signature": "DOES NOT VERIFY: not written by the bridge as it is; never replayed",
}


def show(
    entry: Entry, replay: ReplayRecord | None, topic: str, integrity: Integrity | None = None
) -> str:
    """``show``: the whole dead letter as indented JSON, then its body or value decoded, its
    signature (``integrity``) and its replay."""
    letter = entry.letter
    head = escape(f"{topic} partition {entry.partition} offset {entry.offset}")
    if letter is None:
        return f"unreadable record at {head}: {escape(entry.error or '')}"
    out = [
        f"dead letter {escape(letter.dead_letter_id)} ({head})",
        escape(letter.model_dump_json(indent=2), newlines=True),
    ]
    request = letter.request
    if request is not None:
        out += ["", f"request: {escape(request.method)} {escape(request.path)}"]
        if request.query:
            out += ["query fields:", *_query_fields(request.query)]
        body = _blob(request.body, request.body_encoding)
        out += _section("body", body, request.body_encoding, request.body_truncated)
    record = letter.record
    if record is not None:
        where = escape(f"{record.topic}[{record.partition}]@{record.offset}")
        out += ["", f"record: {where} key {escape(repr(record.key))}"]
        out += [f"  header {escape(name)} = {value}" for name, value in _record_headers(record)]
        if record.value is None:
            out.append("value: (none)")
        else:
            value = _blob(record.value, record.value_encoding)
            out += _section("value", value, record.value_encoding, record.value_truncated)
    out.append("")
    if integrity is not None:
        out.append(f"signature: {_SIGNATURE[integrity]}")
    out.append(f"replay: {_replay_line(replay)}")
    return "\n".join(out)


def _record_headers(record: KafkaRecordRef) -> list[tuple[str, str]]:
    """Each header of the record in order, its value escaped (bytes that are not UTF-8 in hex);
    sorted by name in dead letters that keep one value per name only."""
    if record.header_lines is None:
        return [(name, escape(value)) for name, value in sorted(record.headers.items())]
    return [(line.name, _line_value(line)) for line in record.header_lines]


def _line_value(line: HeaderLine) -> str:
    if line.value is None:
        return "(no value)"
    if line.value_encoding == "utf-8":
        return escape(line.value)
    raw = _blob(line.value, "base64")
    if raw is None:
        return f"(base64 that does not decode) {escape(line.value)}"
    more = f" … {len(raw) - HEX_BYTES} more bytes" if len(raw) > HEX_BYTES else ""
    return f"(binary, hex) {raw[:HEX_BYTES].hex(' ')}{more}"


def _replay_line(record: ReplayRecord | None) -> str:
    if record is None:
        return "never replayed"
    when = record.replayed_at.isoformat()
    if record.outcome == "replayed":
        return escape(f"replayed at {when} to {record.produced_to}")
    return escape(f"still invalid at {when}: {record.reason_code}: {record.reason}")
