"""Hostile command records from a plain producer: each gets its dead letter, and its result when
an id can be read, never a call, and the worker goes on with the next record."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import pytest

from tests.support.bridge_app import BridgeFactory
from tests.support.commands import Loop, closed_loop, command
from tests.support.kafka_records import consume_for

pytestmark = pytest.mark.integration


async def everything(loop: Loop, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic``, read long enough that a late extra one would show."""
    records = await consume_for(loop.settings.kafka.bootstrap_servers, topic, seconds=2)
    return [json.loads(r.value) for r in records]


async def test_values_the_json_reader_chokes_on_are_rejected_with_the_keys_id(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge) as loop:
        good = command(f"good-{uuid.uuid4()}").model_dump(mode="json")
        hostile = {
            # Nested deeper than Python's recursion limit: a few kilobytes.
            b"deep": b'{"command_id": "deep", "x": ' + b"[" * 5000,
            # A lone surrogate: JSON text may escape one, but no UTF-8 result can carry it.
            b"surrogate": json.dumps(good | {"command_id": "\ud800"}).encode(),
            b"tombstone": None,
            b"not-an-object": b'["deep"]',
        }
        for key, value in hostile.items():
            await loop.send(value, key=key)  # type: ignore[arg-type]
        await loop.send(json.dumps(good).encode(), key=good["command_id"].encode())
        # The good command was sent last, on its own partition maybe: wait for every result.
        await loop.results(len(hostile) + 1)
        results = await everything(loop, loop.settings.topics.place_call_results)
        assert Counter((r["command_id"], r["status"]) for r in results) == Counter(
            {(key.decode(), "rejected"): 1 for key in hostile} | {(good["command_id"], "placed"): 1}
        )
        letters = await everything(loop, loop.settings.topics.dead_letters)
        by_key = {letter["record"]["key"]: letter for letter in letters}
        assert len(letters) == len(by_key) == len(hostile)
        assert {letter["reason_code"] for letter in letters} == {"invalid_command"}
        assert "recursion limit" in by_key["deep"]["reason"]
        assert "not valid JSON" in by_key["surrogate"]["reason"]
        assert by_key["tombstone"]["reason"] == "record has no value"
        assert loop.calls_per_command() == Counter({good["command_id"]: 1})
