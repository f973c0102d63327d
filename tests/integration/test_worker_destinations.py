"""Toll fraud fails closed: what the real worker sends FoneStorm (the sandbox), and what it
refuses to send at all (real Kafka, the sandbox's own record of requests and calls).

Every command here is keyed by its id, and the sandbox records each create-call request with
the command id as its idempotency key: a refused command must have no request at all.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult
from bridge.contracts.dead_letters import DeadLetter
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import Loop, closed_loop, command
from tests.support.digits import ARABIC_INDIC, FULLWIDTH, written
from tests.support.sandbox import OURS

pytestmark = pytest.mark.integration


async def outcomes(
    loop: Loop, placed: list[PlaceCallCommand], refused: list[PlaceCallCommand]
) -> dict[str, dict[str, Any]]:
    """Send every command, wait for all results; the results by command id.

    Checks the promises common to every test: the ``placed`` ones were placed once each, the
    ``refused`` ones ended ``rejected`` with a dead letter and no create-call request at all.
    """
    await loop.send(*refused, *placed)
    results = {r["command_id"]: r for r in await loop.results(len(placed) + len(refused))}
    for result in results.values():
        PlaceCallResult.model_validate(result)
    for cmd in placed:
        assert results[cmd.command_id]["status"] == "placed", results[cmd.command_id]
    for cmd in refused:
        result = results[cmd.command_id]
        assert (result["status"], result["attempts"], result["call_id"]) == ("rejected", 0, None)
    assert loop.calls_per_command() == {cmd.command_id: 1 for cmd in placed}
    asked = [r.idempotency_key for r in loop.sandbox.state.requests if r.path == "/v2/calls"]
    assert sorted(asked) == sorted(cmd.command_id for cmd in placed)
    if refused:
        letters = await loop.dead_letters(len(refused))
        for letter in letters:
            DeadLetter.model_validate(letter)
        by_id = {json.loads(d["record"]["value"])["command_id"]: d for d in letters}
        assert set(by_id) == {cmd.command_id for cmd in refused}
        for cmd in refused:
            assert by_id[cmd.command_id]["reason_code"] == results[cmd.command_id]["error_code"]
    return results


def sent(loop: Loop, cmd: PlaceCallCommand) -> tuple[str, str]:
    """The ``fonenumber`` and ``to`` FoneStorm got for ``cmd``."""
    (call,) = (c for c in loop.sandbox.state.calls.values() if c.idempotency_key == cmd.command_id)
    return call.fonenumber, call.to


def new(name: str, to: str, **extra: Any) -> PlaceCallCommand:
    return command(f"{name}-{uuid.uuid4()}", to=to, **extra)


async def test_fonestorm_gets_e164_never_the_commands_spelling(start_bridge: BridgeFactory) -> None:
    async with closed_loop(start_bridge) as loop:
        spelt = [
            (new("national", "(321) 555-1801"), "+13215551801"),
            (new("dotted", "321.555.1802", fonenumber="+1 (321) 555-1081"), "+13215551802"),
            (new("trunk", "1-321-555-1803"), "+13215551803"),
            (new("fullwidth", written("+1 321-555-1804", FULLWIDTH)), "+13215551804"),
            (new("arabic-indic", written("321 555 1805", ARABIC_INDIC)), "+13215551805"),
            (
                new("nbsp", "321\u00a0555\u00a01806", fonenumber=written(OURS, FULLWIDTH)),
                "+13215551806",
            ),
        ]
        await outcomes(loop, placed=[cmd for cmd, _ in spelt], refused=[])
        for cmd, e164 in spelt:
            assert sent(loop, cmd) == ("+13215551081", e164), cmd


async def test_dial_strings_and_invalid_numbers_never_reach_fonestorm(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge) as loop:
        typed = {
            "+19005550100#": "has '#' at position 12",
            "+1 900 555 0100;a": "has ';' at position 15",
            "+44 909 879 0000#": "has '#' at position 16",
            "44 909 879 0000": "is not a valid number (+1449098790000, read in region US",
            "3215551801,1": "has ',' at position 10",
            "3215551801w1": "has 'w' at position 10",
            "3215551801 x12": "has 'x' at position 11",
            "+15550101": "is not a valid number (+15550101",
            "321 555 18O1": "has 'O' at position 10",
        }
        refused = [(new("typed", to), why) for to, why in typed.items()]
        normal = new("normal", "3215551801")
        results = await outcomes(loop, placed=[normal], refused=[cmd for cmd, _ in refused])
        for cmd, why in refused:
            result = results[cmd.command_id]
            assert result["error_code"] == "destination_invalid", result
            assert result["error_message"].startswith(f"to {cmd.to!r} {why}"), result
        assert sent(loop, normal) == ("+13215551081", "+13215551801")


async def test_an_undialable_fonenumber_is_refused(start_bridge: BridgeFactory) -> None:
    async with closed_loop(start_bridge) as loop:
        extension = new("extension", "3215551801", fonenumber=f"{OURS};ext=1")
        results = await outcomes(loop, placed=[], refused=[extension])
        result = results[extension.command_id]
        assert result["error_code"] == "fonenumber_invalid"
        assert "has ';' at position 10" in result["error_message"]


async def test_calls_go_only_to_the_countries_of_our_fonenumbers(
    start_bridge: BridgeFactory,
) -> None:
    """The loop's FoneNumber is a US one: the US, not the rest of +1 nor any other country."""
    async with closed_loop(start_bridge) as loop:
        home = new("home", "+1 407 555 0123")
        abroad = [
            (new("uk", "+44 20 7946 0958"), "(+442079460958, country GB)"),
            (new("jamaica", "+1 876 555 0123"), "(+18765550123, country JM)"),
            (new("canada", "+1 613 555 0123"), "(+16135550123, country CA)"),
        ]
        results = await outcomes(loop, placed=[home], refused=[cmd for cmd, _ in abroad])
        for cmd, where in abroad:
            result = results[cmd.command_id]
            assert result["error_code"] == "destination_not_allowed"
            assert f"{where} is not in a country of our FoneNumbers" in result["error_message"]
            assert "(allowed: US)" in result["error_message"]


async def test_satellite_and_global_ranges_are_refused(start_bridge: BridgeFactory) -> None:
    async with closed_loop(start_bridge) as loop:
        ranges = [
            (new("iprs", "+979 1 234 56789"), "+979: international premium-rate"),
            (new("satellite", "+881 6 1234 5678"), "+881: global mobile satellite"),
            (new("networks", "+882 34 2123 4"), "+882: international networks"),
            (new("networks", "+883 510 012 345"), "+883: international networks"),
        ]
        results = await outcomes(loop, placed=[], refused=[cmd for cmd, _ in ranges])
        for cmd, kind in ranges:
            result = results[cmd.command_id]
            assert result["error_code"] == "destination_not_allowed"
            assert f"is a non-geographic number ({kind}), refused while" in result["error_message"]


async def test_nothing_configured_refuses_every_destination(start_bridge: BridgeFactory) -> None:
    async with closed_loop(start_bridge, fonestorm={"fonenumbers": []}) as loop:
        home = new("home", "3215551801")
        results = await outcomes(loop, placed=[], refused=[home])
        result = results[home.command_id]
        assert result["error_code"] == "destination_not_allowed"
        assert "no destination is allowed" in result["error_message"]
        assert "BRIDGE_WORKER__ALLOWED_DESTINATIONS" in result["error_message"]


async def test_allowed_destinations_widen_the_fonenumbers_countries(
    start_bridge: BridgeFactory,
) -> None:
    worker = {"allowed_destinations": ["GB", "+1613"]}
    async with closed_loop(start_bridge, worker=worker) as loop:
        placed = [
            new("home", "3215551801"),
            new("uk", "+44 20 7946 0958"),
            new("ottawa", "+1 613 555 0123"),
        ]
        france = new("france", "+33 1 42 68 53 00")
        premium = new("uk-premium", "+44 909 879 0000")
        results = await outcomes(loop, placed=placed, refused=[france, premium])
        assert "(allowed: GB, US, +1613)" in results[france.command_id]["error_message"]
        assert "is a premium-rate number" in results[premium.command_id]["error_message"]
        assert [sent(loop, cmd)[1] for cmd in placed] == [
            "+13215551801",
            "+442079460958",
            "+16135550123",
        ]


async def test_star_allows_every_country_but_no_premium_or_non_geographic_number(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(start_bridge, worker={"allowed_destinations": ["*"]}) as loop:
        placed = [new("france", "+33 1 42 68 53 00"), new("jamaica", "+1 876 555 0123")]
        refused = [new("us-premium", "+1 900 555 0199"), new("satellite", "+881612345678")]
        await outcomes(loop, placed=placed, refused=refused)
