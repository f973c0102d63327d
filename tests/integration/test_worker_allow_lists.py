"""The worker will not ring just any number: unlisted FoneNumbers and premium-rate or
unallowed destinations end `rejected` with a dead letter and no call (real Kafka, the sandbox
as FoneStorm)."""

from __future__ import annotations

import json
import uuid

import pytest

from bridge.contracts.dead_letters import DeadLetter
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import closed_loop, command
from tests.support.kafka_records import consume_for
from tests.support.sandbox import OURS

pytestmark = pytest.mark.integration


async def test_unlisted_fonenumber_and_premium_rate_destination_are_refused(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge, fonestorm={"fonenumbers": [f"+1{OURS}"]}) as loop:
        normal = command(f"normal-{uuid.uuid4()}")
        unlisted = command(f"unlisted-{uuid.uuid4()}", fonenumber="4075550123")
        premium = command(f"premium-{uuid.uuid4()}", to="+1 900 555 0199")
        await loop.send(unlisted, premium, normal)
        by_id = {r["command_id"]: r for r in await loop.results(3)}
        assert set(by_id) == {normal.command_id, unlisted.command_id, premium.command_id}

        assert by_id[normal.command_id]["status"] == "placed"

        refused = by_id[unlisted.command_id]
        assert (refused["status"], refused["error_code"], refused["attempts"]) == (
            "rejected",
            "fonenumber_not_allowed",
            0,
        )
        assert "'4075550123' (+14075550123)" in refused["error_message"]
        assert "BRIDGE_FONESTORM__FONENUMBERS" in refused["error_message"]

        refused = by_id[premium.command_id]
        assert (refused["status"], refused["error_code"], refused["attempts"]) == (
            "rejected",
            "destination_not_allowed",
            0,
        )
        assert "(+19005550199) is a premium-rate number" in refused["error_message"]
        assert refused["call_id"] is None

        letters = await loop.dead_letters(2)
        for letter in letters:
            DeadLetter.model_validate(letter)
        reasons = {
            json.loads(letter["record"]["value"])["command_id"]: letter["reason_code"]
            for letter in letters
        }
        assert reasons == {
            unlisted.command_id: "fonenumber_not_allowed",
            premium.command_id: "destination_not_allowed",
        }
        assert {letter["source"] for letter in letters} == {"command"}

        ledger = await consume_for(
            loop.settings.kafka.bootstrap_servers, loop.settings.topics.command_ledger, seconds=1
        )
        states: dict[str, list[str]] = {}
        for record in ledger:
            entry = json.loads(record.value)
            states.setdefault(entry["command_id"], []).append(entry["state"])
        assert states[unlisted.command_id] == ["done"]
        assert states[premium.command_id] == ["done"]
        assert states[normal.command_id] == ["placing", "done"]

        assert loop.calls_per_command() == {normal.command_id: 1}
        assert [r.path for r in loop.sandbox.state.requests if r.path == "/v2/calls"] == [
            "/v2/calls"
        ]


async def test_allowed_and_denied_destinations(start_bridge: BridgeFactory) -> None:
    worker = {"allowed_destinations": ["+1"], "denied_destinations": ["+1407"]}
    async with closed_loop(start_bridge, worker=worker) as loop:
        normal = command(f"normal-{uuid.uuid4()}")
        abroad = command(f"abroad-{uuid.uuid4()}", to="+442079460958")
        denied = command(f"denied-{uuid.uuid4()}", to="4075550123")
        await loop.send(abroad, denied, normal)
        by_id = {r["command_id"]: r for r in await loop.results(3)}
        assert by_id[normal.command_id]["status"] == "placed"
        for cmd, rule in (
            (abroad, "is not in a country of our FoneNumbers nor in "
             "BRIDGE_WORKER__ALLOWED_DESTINATIONS (allowed: US, +1)"),
            (denied, "denied prefix +1407"),
        ):  # fmt: skip
            result = by_id[cmd.command_id]
            assert (result["status"], result["error_code"]) == (
                "rejected",
                "destination_not_allowed",
            )
            assert rule in result["error_message"]
        assert len(await loop.dead_letters(2)) == 2
        assert loop.calls_per_command() == {normal.command_id: 1}
