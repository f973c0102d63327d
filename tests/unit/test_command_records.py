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
    MAX_CUT_HEADERS,
    cut_note,
    readable_command_id,
    record_ref,
    written_at,
)
from bridge.commands.trimming import ELLIPSIS
from bridge.contracts.commands import parse_command
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
    dropped = record_ref(record, max_value=0, max_text=0)
    assert (dropped.key, dropped.headers, dropped.header_lines) == (None, {}, None)
    assert "(40000) cut to 1024 characters each" in cut_note(record, DEAD_LETTER_CUTS[0])
    assert f"({len(key)} bytes) and headers (40000) dropped" in cut_note(record, 0)


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
