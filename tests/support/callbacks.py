"""Call callbacks as FoneStorm sends them, and posting them to a receiver."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

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
