"""refusal(): which calls the worker will not place, as a table."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.commands.destinations import refusal
from bridge.contracts.commands import PlaceCallCommand
from bridge.settings import WorkerSettings

OURS = "3215551081"
FONE = "fonenumber_not_allowed"
DEST = "destination_not_allowed"


def command(fonenumber: str = OURS, to: str = "3215551801") -> PlaceCallCommand:
    return PlaceCallCommand.model_validate({"command_id": "c1", "fonenumber": fonenumber, "to": to})


@pytest.mark.parametrize(
    ("cmd", "fonenumbers", "worker", "expected"),
    [
        # defaults: no FoneNumbers listed, any destination but premium-rate ones
        pytest.param(command(), [], {}, None, id="defaults: a US number"),
        pytest.param(command(fonenumber="4075550123"), [], {}, None, id="defaults: any fonenumber"),
        pytest.param(command(to="+442079460958"), [], {}, None, id="defaults: a UK number"),
        pytest.param(command(to="not a number"), [], {}, None, id="defaults: FoneStorm judges"),
        pytest.param(
            command(to="+1 900 555 0199"),
            [],
            {},
            (
                DEST,
                "to '+1 900 555 0199' (+19005550199) is a premium-rate number, refused "
                "while BRIDGE_WORKER__DENY_PREMIUM_RATE=true",
            ),
            id="defaults: US premium-rate",
        ),
        pytest.param(
            command(to="9005550100"),
            [],
            {},
            (DEST, "premium-rate"),
            id="defaults: US premium-rate, national format",
        ),
        pytest.param(
            command(to="+44 909 879 0000"),
            [],
            {},
            (DEST, "(+449098790000) is a premium-rate number"),
            id="defaults: UK premium-rate",
        ),
        pytest.param(
            command(to="011 44 909 879 0000"),
            [],
            {},
            (DEST, "(+449098790000) is a premium-rate number"),
            id="defaults: UK premium-rate dialled from the US",
        ),
        pytest.param(
            command(to="+33884012345"),
            [],
            {},
            (DEST, "(+33884012345) is a shared-cost (premium-rate) number"),
            id="defaults: FR shared-cost",
        ),
        pytest.param(
            command(to="+19005550199"),
            [],
            {"deny_premium_rate": False},
            None,
            id="premium-rate allowed when switched off",
        ),
        # our FoneNumbers
        pytest.param(command(), [OURS], {}, None, id="listed fonenumber"),
        pytest.param(command(fonenumber="+13215551081"), [OURS], {}, None, id="listed, E.164"),
        pytest.param(command(), ["+1 (321) 555-1081"], {}, None, id="listed as formatted E.164"),
        pytest.param(
            command(fonenumber="(321) 555-1081"), ["+13215551081"], {}, None, id="listed, national"
        ),
        pytest.param(
            command(fonenumber="4075550123"),
            [OURS, "+13215551082"],
            {},
            (
                FONE,
                "fonenumber '4075550123' (+14075550123) is not one of ours in "
                "BRIDGE_FONESTORM__FONENUMBERS",
            ),
            id="unlisted fonenumber",
        ),
        pytest.param(
            command(fonenumber="ours"),
            [OURS],
            {},
            (
                FONE,
                "fonenumber 'ours' is not a phone number (read in region US), so not one of "
                "ours in BRIDGE_FONESTORM__FONENUMBERS",
            ),
            id="unparsable fonenumber",
        ),
        pytest.param(
            command(fonenumber="4075550123", to="+19005550199"),
            [OURS],
            {},
            (FONE, "4075550123"),
            id="fonenumber checked first",
        ),
        # allowed prefixes
        pytest.param(command(), [], {"allowed_destinations": ["+1", "+44"]}, None, id="allowed"),
        pytest.param(
            command(to="+442079460958"),
            [],
            {"allowed_destinations": ["+1", "+44"]},
            None,
            id="allowed, second prefix",
        ),
        pytest.param(
            command(to="+33142685300"),
            [],
            {"allowed_destinations": ["+1", "+44"]},
            (
                DEST,
                "to '+33142685300' (+33142685300) does not start with any of the allowed "
                "prefixes in BRIDGE_WORKER__ALLOWED_DESTINATIONS (+1, +44)",
            ),
            id="not in allowed prefixes",
        ),
        pytest.param(
            command(to="3215551801"),
            [],
            {"allowed_destinations": ["+44"]},
            (DEST, "(+13215551801) does not start with any of the allowed prefixes"),
            id="national number outside the allowed prefixes",
        ),
        pytest.param(
            command(to="not a number"),
            [],
            {"allowed_destinations": ["+1"]},
            (
                DEST,
                "to 'not a number' is not a phone number (read in region US), so it does not "
                "start with any of the allowed prefixes in "
                "BRIDGE_WORKER__ALLOWED_DESTINATIONS (+1)",
            ),
            id="unparsable with allowed prefixes",
        ),
        pytest.param(
            command(to="12"),
            [],
            {"allowed_destinations": ["+1"]},
            (DEST, "is not a phone number"),
            id="too short to be a number with allowed prefixes",
        ),
        # denied prefixes
        pytest.param(
            command(to="+13215551801"),
            [],
            {"denied_destinations": ["+1321"]},
            (
                DEST,
                "to '+13215551801' (+13215551801) starts with the denied prefix +1321 in "
                "BRIDGE_WORKER__DENIED_DESTINATIONS",
            ),
            id="denied prefix",
        ),
        pytest.param(
            command(to="3215551801"),
            [],
            {"allowed_destinations": ["+1"], "denied_destinations": ["+1 321"]},
            (DEST, "starts with the denied prefix +1321"),
            id="denied after allowed, national format",
        ),
        pytest.param(
            command(to="+442079460958"),
            [],
            {"denied_destinations": ["+1321"]},
            None,
            id="not denied",
        ),
        pytest.param(
            command(to="+1 900 555 0199"),
            [],
            {"denied_destinations": ["+1900"]},
            (DEST, "denied prefix +1900"),
            id="denied prefix named before premium-rate",
        ),
        pytest.param(
            command(to="not a number"),
            [],
            {"denied_destinations": ["+1"]},
            None,
            id="unparsable, only denied prefixes: FoneStorm judges",
        ),
    ],
)
def test_refusal_table(
    cmd: PlaceCallCommand,
    fonenumbers: list[str],
    worker: dict[str, Any],
    expected: tuple[str, str] | None,
) -> None:
    got = refusal(
        cmd,
        fonenumbers=fonenumbers,
        worker_settings=WorkerSettings.model_validate(worker),
        region="US",
    )
    if expected is None:
        assert got is None
    else:
        assert got is not None
        code, fragment = expected
        assert got[0] == code
        assert fragment in got[1], got[1]


def test_national_numbers_are_read_in_the_default_region() -> None:
    uk = command(fonenumber="020 7946 0958", to="020 7946 0959")
    listed = ["+442079460958"]
    settings = WorkerSettings(allowed_destinations=["+44"])
    assert refusal(uk, fonenumbers=listed, worker_settings=settings, region="GB") is None
    refused = refusal(uk, fonenumbers=listed, worker_settings=settings, region="US")
    assert refused is not None
    assert refused[0] == FONE


def test_the_sandbox_numbers_of_the_other_tests_are_not_premium_rate() -> None:
    """Default settings must keep placing the numbers the rest of the suite uses."""
    for to in ("3215551801", "3215550009", "3215550100", "4075550123", "+15550101"):
        got = refusal(command(to=to), fonenumbers=[], worker_settings=WorkerSettings(), region="US")
        assert got is None, (to, got)


@pytest.mark.parametrize("prefix", ["44", "+", "+44a", "+1234567890123456"])
def test_prefixes_must_be_e164(prefix: str) -> None:
    with pytest.raises(ValueError, match=r"is not an E\.164 prefix"):
        WorkerSettings(denied_destinations=[prefix])
    with pytest.raises(ValueError, match=r"is not an E\.164 prefix"):
        WorkerSettings(allowed_destinations=[prefix])


def test_prefixes_are_compacted() -> None:
    settings = WorkerSettings(allowed_destinations=["+1", "+44 20"], denied_destinations=["+1-900"])
    assert settings.allowed_destinations == ["+1", "+4420"]
    assert settings.denied_destinations == ["+1900"]
