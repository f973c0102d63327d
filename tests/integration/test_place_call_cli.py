"""`fonestorm-bridge place-call` writes a command as the README tells a producing service to."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import uuid

import pytest

from bridge import cli
from bridge.contracts.commands import PlaceCallCommand
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import closed_loop
from tests.support.kafka_records import consume_all, headers_of
from tests.support.sandbox import CALLEE, OURS

pytestmark = pytest.mark.integration


async def test_the_cli_command_is_keyed_by_its_id_with_cloudevents_headers_and_placed(
    start_bridge: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with closed_loop(start_bridge) as loop:
        settings = loop.settings
        monkeypatch.setenv("BRIDGE_KAFKA__BOOTSTRAP_SERVERS", settings.kafka.bootstrap_servers)
        monkeypatch.setenv("BRIDGE_TOPICS__PLACE_CALL", settings.topics.place_call)
        command_id = f"cli-{uuid.uuid4()}"
        argv = [
            "place-call", "--fonenumber", OURS, "--to", CALLEE, "--tts", "Hello",
            "--command-id", command_id, "--correlation-id", "appointment-17",
        ]  # fmt: skip
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            # The CLI runs its own event loop: off the one that serves the bridge.
            assert await asyncio.to_thread(cli.main, argv) == 0
        printed = PlaceCallCommand.model_validate_json(out.getvalue())

        [record] = await consume_all(
            settings.kafka.bootstrap_servers, settings.topics.place_call, expected=1
        )
        assert record.key == command_id.encode()
        assert PlaceCallCommand.model_validate_json(record.value) == printed
        headers = headers_of(record)
        assert len(headers) == len(record.headers), "a header name repeated"
        assert headers | {"ce_time": "…"} == {
            "ce_specversion": "1.0",
            "ce_id": command_id,
            "ce_source": "/fonestorm-bridge/cli",
            "ce_type": "com.fonestorm.bridge.place-call",
            "ce_time": "…",
            "ce_subject": command_id,
            "ce_dataschema": PlaceCallCommand.schema_id(),
            "content-type": "application/json",
        }

        [result] = await loop.results(1)
        assert (result["command_id"], result["status"]) == (command_id, "placed")
        assert result["correlation_id"] == "appointment-17"
        assert loop.calls_per_command() == {command_id: 1}
        assert json.loads(record.value)["to"] == CALLEE
