"""What the worker reads of a command record it cannot parse: why, its id, its dead-letter copy."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from bridge.commands.records import (
    DEAD_LETTER_CUTS,
    LINES_ONLY_NOTE,
    MAX_CUT_HEADERS,
    cut_note,
    dead_letter_copies,
    readable_command_id,
    record_ref,
    written_at,
)
from bridge.commands.trimming import ELLIPSIS
from bridge.contracts.commands import parse_command
from bridge.contracts.dead_letters import KafkaRecordRef
from bridge.errors import InvalidCommand


def _record(
    value: bytes | None,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    timestamp: int = 0,
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t", partition=0, offset=0, timestamp=timestamp, timestamp_type=0, key=key,
        value=value, checksum=None, serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""), headers=headers or [],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "key", "command_id"),
    [
        (b'{"command_id": "c-1"}', b"k", "c-1"),
        (b'{"command_id": ""}', b"k", None),
        (b"{not json", b"k", "k"),
        (None, b"k", "k"),
        (b'["c-1"]', None, None),
        (b"{}", b"\xff", None),
        # Deeper than the recursion limit of Python's JSON reader.
        (b'{"command_id": "c-1", "x": ' + b"[" * 5000, b"k", "k"),
        (b'{"command_id": "c-1", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"k", "k"),
        # A lone surrogate: JSON can escape one, no UTF-8 record can carry it.
        (json.dumps({"command_id": "\ud800"}).encode(), b"k", "k"),
        (json.dumps({"command_id": "a\udfffb"}).encode(), None, None),
    ],
)
def test_the_id_of_an_unreadable_command(
    value: bytes | None, key: bytes | None, command_id: str | None
) -> None:
    found = readable_command_id(_record(value, key))
    assert found == command_id
    if found is not None:
        found.encode()  # it keys a record


def test_a_dead_letter_copy_is_whole_unless_asked_to_cut() -> None:
    headers = [(f"h{i}", b"\x01" * 2000) for i in range(100)]
    ref = record_ref(_record(b"{}", b"\xff" * 3000, headers))
    assert ref.key == base64.b64encode(b"\xff" * 3000).decode()
    assert ref.headers == {name: "\x01" * 2000 for name, _ in headers}


@pytest.mark.parametrize("key", [b"\x01" * 900_000, b"\xff" * 900_000])
def test_a_cut_copy_is_small_whatever_the_key_and_headers(key: bytes) -> None:
    headers = [(f"{i}" + "\x01" * 2000, b"\x01" * 2000) for i in range(40_000)]
    record = _record(b"x" * 900_000, key, headers)
    cut = record_ref(record, max_value=0, max_text=DEAD_LETTER_CUTS[0])
    assert cut.value is None
    assert cut.value_truncated
    assert cut.key is not None
    assert cut.key.endswith(ELLIPSIS)
    assert len(cut.key) == DEAD_LETTER_CUTS[0] + 1
    assert len(cut.headers) == MAX_CUT_HEADERS
    assert all(
        len(name) == len(value) == DEAD_LETTER_CUTS[0] + 1 for name, value in cut.headers.items()
    )
    assert cut.header_lines is not None
    assert len(cut.header_lines) == MAX_CUT_HEADERS
    # Escaped control characters are six bytes each: the key, and 32 names and values twice
    # (the mapping, the lines) of 1,025 of them, ~790 KB: still below Kafka's 1 MB default.
    assert len(cut.model_dump_json()) < 800_000
    # As a dead letter tries it: the lines alone, about half that (~400 KB).
    lines_only = record_ref(record, max_value=0, max_text=DEAD_LETTER_CUTS[0], mapping=False)
    assert lines_only.headers == {}
    assert lines_only.header_lines == cut.header_lines
    assert len(lines_only.model_dump_json()) < 405_000
    dropped = record_ref(record, max_value=0, max_text=0)
    assert (dropped.key, dropped.headers, dropped.header_lines) == (None, {}, None)
    assert "(40000) cut to 1024 characters each" in cut_note(record, DEAD_LETTER_CUTS[0])
    assert f"({len(key)} bytes) and headers (40000) dropped" in cut_note(record, 0)


_CONTROL = b"\x01"  # six bytes once escaped in JSON
_MANY = [(f"h{i:03d}" + "\x01" * 2000, _CONTROL * 2000) for i in range(100)]
_SOME = [(f"h{i:02d}" + "\x01" * 1100, _CONTROL * 1100) for i in range(40)]
_FEW = [("traceparent", b"00-x"), ("h", b"v"), ("h", b"\xff")]


def _shape(ref: KafkaRecordRef, note: str | None) -> tuple[object, ...]:
    # What each copy keeps: value, key, the mapping's size, the lines' (cut or not), the note.
    lines = ref.header_lines
    return (
        "value" if ref.value is not None else None,
        None if ref.key is None else "key…" if ref.key.endswith(ELLIPSIS) else "key",
        len(ref.headers),
        None
        if lines is None
        else (len(lines), any(line.name.endswith(ELLIPSIS) for line in lines)),
        None if note is None else "lines" if note == LINES_ONLY_NOTE else note.split(") ", 2)[-1],
    )


_DROPPED = "dropped, to fit Kafka's record size limit]"
_CUT = (
    "cut to 1024 characters each, at most 32 headers kept, in header_lines only, "
    "to fit Kafka's record size limit]"
)


@pytest.mark.parametrize(
    ("value", "key", "headers", "copies"),
    [
        # No headers: no copy without the mapping, and the cut one is the valueless one.
        (b"{", b"k", [], [("value", "key", 0, (0, False), None),
                          (None, "key", 0, (0, False), None),
                          (None, None, 0, None, _DROPPED)]),
        # The mapping goes first, before the value; short headers need no cutting.
        (b"{", b"k", _FEW, [("value", "key", 2, (3, False), None),
                            ("value", "key", 0, (3, False), "lines"),
                            (None, "key", 0, (3, False), "lines"),
                            (None, None, 0, None, _DROPPED)]),
        # No value to drop: that copy is the one before.
        (None, b"k", _FEW, [(None, "key", 2, (3, False), None),
                            (None, "key", 0, (3, False), "lines"),
                            (None, None, 0, None, _DROPPED)]),
        (b"{", b"k", _SOME, [("value", "key", 40, (40, False), None),
                             ("value", "key", 0, (40, False), "lines"),
                             (None, "key", 0, (40, False), "lines"),
                             (None, "key", 0, (32, True), _CUT),
                             (None, None, 0, None, _DROPPED)]),
        (b"{", b"k" * 2000, _MANY, [("value", "key", 100, (100, False), None),
                                    ("value", "key", 0, (100, False), "lines"),
                                    (None, "key", 0, (100, False), "lines"),
                                    (None, "key…", 0, (32, True), _CUT),
                                    (None, None, 0, None, _DROPPED)]),
    ],
)  # fmt: skip
def test_the_copies_a_dead_letter_tries_in_turn(
    value: bytes | None,
    key: bytes,
    headers: list[tuple[str, bytes]],
    copies: list[tuple[object, ...]],
) -> None:
    record = _record(value, key, headers)
    assert [_shape(ref, note) for ref, note in dead_letter_copies(record)] == copies


@pytest.mark.parametrize(
    ("headers", "limit", "lines"),
    [
        # Kafka's record size limit of the dead letters' topic, between what the headers weigh
        # once and twice: the first copy that fits still has its lines.
        (_SOME, 600_000, (40, False)),
        (_SOME, 800_000, (40, False)),
        (_MANY, 450_000, (32, True)),
        (_MANY, 600_000, (32, True)),
        (_MANY, 790_000, (32, True)),
        # Under what one cut copy weighs: none.
        (_MANY, 350_000, None),
    ],
)
def test_the_first_copy_that_fits_keeps_the_header_lines_when_one_copy_fits(
    headers: list[tuple[str, bytes]], limit: int, lines: tuple[int, bool] | None
) -> None:
    record = _record(b"{not json", b"k", headers)
    fits = next(ref for ref, _ in dead_letter_copies(record) if len(ref.model_dump_json()) < limit)
    assert _shape(fits, None)[3] == lines


def test_cutting_keeps_what_is_short() -> None:
    record = _record(b"{}", b"k", [("traceparent", b"00-x"), ("empty", b"")])
    cut = record_ref(record, max_value=0, max_text=DEAD_LETTER_CUTS[0])
    assert (cut.key, cut.headers) == ("k", {"traceparent": "00-x", "empty": ""})


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        (-1, None),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (253_402_300_799_000, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        (253_402_300_800_000, None),  # the year 10000
        (2**63 - 1, None),  # the largest a Kafka timestamp can be
    ],
)
def test_when_a_record_was_written(stamp: int, expected: datetime | None) -> None:
    record = _record(b"{", b"k", timestamp=stamp)
    assert written_at(record) == expected
    assert record_ref(record).timestamp == expected


_VALID = {"command_id": "c", "fonenumber": "3215551081", "to": "3215551801"}


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"metadata": {"a": 5}}, "metadata.a: Input should be a valid string"),
        (
            {"metadata": {"k" * 100_000: "v"}},
            f"metadata.{'k' * 65}….[key]: String should have at most 64 characters",
        ),
        (
            {"metadata": {f"{n:05d}": n for n in range(50_000)}},
            "; ".join(f"metadata.{n:05d}: Input should be a valid string" for n in range(10))
            + "; and 49990 more errors",
        ),
    ],
)
def test_a_refusal_names_a_bounded_number_of_errors(extra: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidCommand) as refused:
        parse_command(json.dumps(_VALID | extra).encode())
    assert refused.value.message == reason


_NOT_RFC3339 = "not_after: must be an RFC 3339 date-time with an offset, e.g. 2026-12-06T17:30:00Z"


@pytest.mark.parametrize(
    ("not_after", "expected"),
    [
        ("2026-12-06T17:30:00Z", datetime(2026, 12, 6, 17, 30, tzinfo=UTC)),
        ("2026-12-06t17:30:00.25+00:00", datetime(2026, 12, 6, 17, 30, 0, 250_000, tzinfo=UTC)),
        ("2026-12-06 18:30:00+01:00", datetime(2026, 12, 6, 17, 30, tzinfo=UTC)),
        (None, None),
        # Unix time in seconds or milliseconds: pydantic would guess which by its size.
        (1796578200, _NOT_RFC3339),
        (1796578200000, _NOT_RFC3339),
        ("1796578200", _NOT_RFC3339),
        (1796578200.5, _NOT_RFC3339),
        (True, _NOT_RFC3339),
        ("2026-12-06T17:30:00", _NOT_RFC3339),
        ("2026-12-06", _NOT_RFC3339),
        ("2026-12-06T17:30Z", _NOT_RFC3339),
        ("2026-12-06T17:30:00+0100", _NOT_RFC3339),
        ("\uff12026-12-06T17:30:00Z", _NOT_RFC3339),
    ],
)
def test_not_after_is_an_rfc3339_date_time(not_after: object, expected: object) -> None:
    value = json.dumps(_VALID | {"not_after": not_after}).encode()
    if isinstance(expected, str):
        with pytest.raises(InvalidCommand) as refused:
            parse_command(value)
        assert refused.value.message == expected
    else:
        assert parse_command(value).not_after == expected
