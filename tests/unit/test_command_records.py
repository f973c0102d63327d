"""What the worker reads of a command record it cannot parse: its id, and its dead-letter copy."""

from __future__ import annotations

import json

import pytest
from aiokafka.structs import ConsumerRecord

from bridge.commands.records import readable_command_id


def _record(
    value: bytes | None, key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t", partition=0, offset=0, timestamp=0, timestamp_type=0, key=key, value=value,
        checksum=None, serialized_key_size=len(key or b""),
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
