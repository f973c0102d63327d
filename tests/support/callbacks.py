"""Call callbacks as FoneStorm sends them, and posting them to a receiver."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp

from bridge.fonestorm.templates import CALLBACK_FIELDS

CALLBACK_PATH = "/callbacks/calls"


def callback(direction: str = "INBOUND", status: str = "BEGIN", **extra: Any) -> dict[str, Any]:
    """A valid callback as FoneStorm's JSON method sends it, with a fresh call id."""
    data: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "account_code": "ACC1",
        "direction": direction,
        "status": status,
        "from": "3215551081",
        "to": "3215551801",
        "type": "VOICE",
    }
    if status == "END":
        data |= {"disposition": "ANSWERED", "billable_seconds": 30}
    return data | extra


def get_query(data: dict[str, Any]) -> str:
    """The query FoneStorm makes of callback ``data`` from our GET template: absent fields
    stay ``{{field}}``."""
    parts = []
    for name in CALLBACK_FIELDS:
        value = str(data[name]) if name in data else "{{" + name + "}}"
        parts.append(f"{name}={quote(value, safe='{}')}")
    return "&".join(parts)


async def post_json(
    session: aiohttp.ClientSession, url: str, data: dict[str, Any]
) -> tuple[int, dict[str, Any] | None]:
    """POST a callback; the status and the JSON answer (None when not JSON)."""
    async with session.post(url + CALLBACK_PATH, json=data) as response:
        try:
            body = await response.json()
        except (aiohttp.ContentTypeError, ValueError):
            body = None
        return response.status, body


async def awaiting_body(
    port: int, body: bytes, host: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose callback POST a handler has taken and whose ``body`` it waits for:
    the head asks ``Expect: 100-continue``, and aiohttp says "go on" as it hands it over."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /callbacks/calls HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    return reader, writer
