"""Schema ids on the wire: Apicurio's id headers, and the Confluent wire format of a value.

Records the bridge writes keep CloudEvents binary mode (the value is the event's plain JSON):
the schema ids go in headers that Apicurio's serdes read (``DefaultHeadersHandler``: 8-byte
big-endian longs). Commands may come in the Confluent wire format instead: magic byte 0, the
schema id as a 4-byte big-endian int, then the JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bridge.errors import InvalidCommand

#: Header Apicurio's deserializer resolves first: the id of the schema's content (what the
#: Confluent-compatible API calls the schema id).
CONTENT_ID_HEADER = "apicurio.value.contentId"
#: Header naming one artifact version (Apicurio's own id; its serializer's default).
GLOBAL_ID_HEADER = "apicurio.value.globalId"

MAGIC_BYTE = 0
_FRAME = 5  # magic byte and 4-byte id


def id_headers(content_id: int, global_id: int | None) -> list[tuple[str, bytes]]:
    """The headers that name a record's schema: content id, and global id when known."""
    headers = [(CONTENT_ID_HEADER, content_id.to_bytes(8, "big", signed=True))]
    if global_id is not None:
        headers.append((GLOBAL_ID_HEADER, global_id.to_bytes(8, "big", signed=True)))
    return headers


def read_id_header(headers: Iterable[tuple[str, bytes]], name: str) -> int | None:
    """The id in the last header ``name`` (as Apicurio reads it), or None."""
    found = None
    for key, value in headers:
        if key == name:
            found = value
    if found is None:
        return None
    if len(found) != 8:
        raise ValueError(f"header {name} has {len(found)} bytes, not 8")
    return int.from_bytes(found, "big", signed=True)


@dataclass(frozen=True)
class Frame:
    """A command value split: the schema id it names (None when plain JSON) and the JSON."""

    schema_id: int | None
    payload: bytes | None


def parse_frame(value: bytes | None) -> Frame:
    """Split a value in the Confluent wire format; a plain value is returned whole.

    JSON text never starts with a zero byte, so a leading zero is a frame. A frame too short to
    hold its id is :class:`InvalidCommand` (``malformed_frame``).
    """
    if not value or value[0] != MAGIC_BYTE:
        return Frame(None, value)
    if len(value) < _FRAME:
        raise InvalidCommand(
            f"value starts with the wire-format magic byte 0 but has {len(value)} bytes, too few "
            "for a 4-byte schema id",
            code="malformed_frame",
        )
    return Frame(int.from_bytes(value[1:_FRAME], "big", signed=False), value[_FRAME:])


def frame(schema_id: int, payload: bytes) -> bytes:
    """``payload`` in the Confluent wire format with ``schema_id`` (what its serializers write)."""
    return bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big", signed=False) + payload
