"""refusal(): which calls the worker will not place, and dialled(): what it sends; as tables."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bridge.commands.destinations import dialled, policy_summary, refusal
from bridge.contracts.commands import PlaceCallCommand
from bridge.settings import WorkerSettings
from tests.support.digits import ARABIC_INDIC, FULLWIDTH, written

OURS = "3215551081"
FONE_INVALID = "fonenumber_invalid"
FONE = "fonenumber_not_allowed"
INVALID = "destination_invalid"
DEST = "destination_not_allowed"
PREMIUM_ON = "refused while BRIDGE_WORKER__DENY_PREMIUM_RATE=true"
CLOSED = (
    "is refused: no destination is allowed, for BRIDGE_FONESTORM__FONENUMBERS has no valid "
    "number and BRIDGE_WORKER__ALLOWED_DESTINATIONS is empty"
)
ONLY = "only digits, spaces, '-', '.', '/', '(', ')' and a leading '+' are dialled"

#: A US FoneNumber: calls go to the US.
US = {"fonenumbers": [OURS]}
#: Every country, premium-rate denial on.
ANYWHERE = {"worker": {"allowed_destinations": ["*"]}}


def command(fonenumber: str = OURS, to: str = "3215551801") -> PlaceCallCommand:
    return PlaceCallCommand.model_validate({"command_id": "c1", "fonenumber": fonenumber, "to": to})


def case(
    to: str,
    expected: tuple[str, str] | None,
    *,
    fonenumber: str = OURS,
    fonenumbers: list[str] | None = None,
    worker: dict[str, Any] | None = None,
    id: str,
) -> Any:
    return pytest.param(command(fonenumber, to), fonenumbers or [], worker or {}, expected, id=id)


TABLE = [
    # nothing configured: fail closed, whatever the number
    case("3215551801", (DEST, f"to '3215551801' (+13215551801) {CLOSED}"), id="closed: US"),
    case("+442079460958", (DEST, CLOSED), id="closed: UK"),
    case("+1 900 555 0199", (DEST, "is a premium-rate number"), id="closed: premium named"),
    case("+19005550100#", (INVALID, "has '#' at position 12"), id="closed: invalid named"),
    # the countries of our FoneNumbers
    case("3215551801", None, **US, id="US FoneNumber: US national"),
    case("+1 (407) 555-0123", None, **US, id="US FoneNumber: US formatted"),
    case("+1 800 555 0199", None, **US, id="US FoneNumber: US toll-free"),
    case(
        "+442079460958",
        (
            DEST,
            "to '+442079460958' (+442079460958, country GB) is not in a country of our "
            "FoneNumbers nor in BRIDGE_WORKER__ALLOWED_DESTINATIONS (allowed: US)",
        ),
        **US,
        id="US FoneNumber: UK refused",
    ),
    case(
        "+1 876 555 0123",
        (DEST, "(+18765550123, country JM) is not in a country of our FoneNumbers"),
        **US,
        id="US FoneNumber: +1 Jamaica refused",
    ),
    case("+1 613 555 0123", (DEST, "country CA"), **US, id="US FoneNumber: +1 Canada refused"),
    case(
        "020 7946 0958",
        (INVALID, "is not a valid number (+102079460958, read in region US: too long)"),
        **US,
        id="US FoneNumber: UK national read as US",
    ),
    case(
        "+447400123456",
        None,
        fonenumber="+44 20 7946 0958",
        fonenumbers=[OURS, "+44 20 7946 0958"],
        id="US and UK FoneNumbers: UK mobile",
    ),
    case(
        "+33142685300",
        (DEST, "(allowed: GB, US)"),
        fonenumbers=[OURS, "+442079460958"],
        id="US and UK FoneNumbers: France refused",
    ),
    case(
        "3215551801",
        (FONE_INVALID, "fonenumber '+15550100' is not a valid number (+15550100"),
        fonenumber="+15550100",
        fonenumbers=["+15550100"],
        id="an invalid FoneNumber is refused",
    ),
    # widened by BRIDGE_WORKER__ALLOWED_DESTINATIONS
    case(
        "+442079460958",
        None,
        **US,
        worker={"allowed_destinations": ["+44"]},
        id="widened by a prefix",
    ),
    case(
        "+16135550123",
        None,
        **US,
        worker={"allowed_destinations": ["CA"]},
        id="widened by a country",
    ),
    case(
        "3215551801",
        None,
        **US,
        worker={"allowed_destinations": ["+44"]},
        id="widening keeps the FoneNumbers' countries",
    ),
    case("+442079460958", None, worker={"allowed_destinations": ["GB"]}, id="a country alone"),
    case(
        "3215551801",
        (DEST, "(allowed: GB, +33)"),
        worker={"allowed_destinations": ["gb", "+33"]},
        id="a country alone: others refused",
    ),
    case("+33142685300", None, **ANYWHERE, id="*: France"),
    case("+81312345678", None, **ANYWHERE, id="*: Japan"),
    case("+18765550123", None, **ANYWHERE, id="*: Jamaica"),
    # premium-rate, shared-cost and non-geographic numbers, whatever is allowed
    case(
        "+1 900 555 0199",
        (DEST, f"to '+1 900 555 0199' (+19005550199) is a premium-rate number, {PREMIUM_ON}"),
        **US,
        id="US premium-rate",
    ),
    case("9005550100", (DEST, "is a premium-rate number"), **US, id="US premium-rate, national"),
    case(
        "+44 909 879 0000",
        (DEST, "(+449098790000) is a premium-rate number"),
        **ANYWHERE,
        id="UK premium-rate with *",
    ),
    case(
        "011 44 909 879 0000",
        (DEST, "(+449098790000) is a premium-rate"),
        **ANYWHERE,
        id="UK premium-rate dialled from the US",
    ),
    case(
        "+33884012345",
        (DEST, "is a shared-cost (premium-rate) number"),
        **ANYWHERE,
        id="FR shared-cost",
    ),
    case(
        "+979123456789",
        (
            DEST,
            "to '+979123456789' (+979123456789) is a non-geographic number (+979: "
            f"international premium-rate), {PREMIUM_ON}",
        ),
        **ANYWHERE,
        id="+979 international premium-rate with *",
    ),
    case("+881612345678", (DEST, "(+881: global mobile satellite)"), **ANYWHERE, id="+881 with *"),
    case("+8823421234", (DEST, "(+882: international networks)"), **ANYWHERE, id="+882 with *"),
    case("+883510012345", (DEST, "(+883: international networks)"), **ANYWHERE, id="+883 with *"),
    case("+80812345678", (DEST, "(+808: international shared-cost)"), **ANYWHERE, id="+808 with *"),
    case("+80012345678", (DEST, "(+800: international freephone)"), **ANYWHERE, id="+800 with *"),
    case("+870301234567", (DEST, "(+870: Inmarsat satellite)"), **ANYWHERE, id="+870 with *"),
    case(
        "+881612345678",
        (DEST, f"is a non-geographic number (+881: global mobile satellite), {PREMIUM_ON}"),
        worker={"allowed_destinations": ["+881"]},
        id="+881 even when listed",
    ),
    case(
        "+881612345678",
        None,
        worker={"allowed_destinations": ["+881"], "deny_premium_rate": False},
        id="+881 listed, premium-rate denial off",
    ),
    case(
        "+881612345678",
        (DEST, "(+881612345678, country 001) is not in a country of our FoneNumbers"),
        **US,
        worker={"deny_premium_rate": False},
        id="+881 with premium-rate denial off: no country of ours",
    ),
    case(
        "+19005550199",
        None,
        **US,
        worker={"deny_premium_rate": False},
        id="premium-rate allowed when switched off",
    ),
    # the strings that went through as typed: refused before the policy is even asked
    case(
        "+19005550100#",
        (
            INVALID,
            f"to '+19005550100#' has '#' at position 12; {ONLY} (no extension, pause, tone or "
            "second number)",
        ),
        **ANYWHERE,
        id="dial string #",
    ),
    case("+1 900 555 0100;a", (INVALID, "has ';' at position 15"), **ANYWHERE, id="dial string ;"),
    case("+44 909 879 0000#", (INVALID, "has '#' at position 16"), **ANYWHERE, id="extension #"),
    case(
        "44 909 879 0000",
        (
            INVALID,
            "to '44 909 879 0000' is not a valid number (+1449098790000, read in region US: "
            "too long)",
        ),
        **ANYWHERE,
        id="UK premium without +: not a US number",
    ),
    case("3215551801,1", (INVALID, "has ',' at position 10"), **US, id="pause ,"),
    case("3215551801w1", (INVALID, "has 'w' at position 10"), **US, id="wait w"),
    case("3215551801p1", (INVALID, "has 'p' at position 10"), **US, id="pause p"),
    case("3215551801 x12", (INVALID, "has 'x' at position 11"), **US, id="extension x"),
    case("3215551801;ext=12", (INVALID, "has ';' at position 10"), **US, id="extension ;ext="),
    case("not a number", (INVALID, "has 'n' at position 0"), **US, id="text"),
    case("12", (INVALID, "is not a valid number (+112"), **US, id="too short"),
    case("+15550101", (INVALID, "too short: a local number only"), **US, id="local only"),
    case(
        "+88163123456",
        (INVALID, "is not a valid number (+88163123456"),
        **ANYWHERE,
        id="+881, too short",
    ),
    case(" ", (INVALID, "to ' ' has no digits"), **US, id="blank"),
    case(
        "9" * 32,
        (INVALID, "is not a phone number (read in region US: too long)"),
        **US,
        id="as long as the contract allows",
    ),
    # Unicode digits: read as ASCII digits
    case(written("3215551801", FULLWIDTH), None, **US, id="fullwidth digits"),
    case(written("+1 321-555-1801", FULLWIDTH), None, **US, id="fullwidth + and -"),
    case(written("3215551801", ARABIC_INDIC), None, **US, id="Arabic-Indic digits"),
    case(
        written("19005550100", FULLWIDTH),
        (DEST, "(+19005550100) is a premium-rate number"),
        **US,
        id="fullwidth premium-rate",
    ),
    case("\u00b93215551801", (INVALID, "has '\u00b9' at position 0"), **US, id="superscript"),
    # our FoneNumbers
    case("3215551801", None, fonenumber="+13215551081", **US, id="listed, E.164"),
    case("3215551801", None, fonenumbers=["+1 (321) 555-1081"], id="listed as formatted E.164"),
    case(
        "3215551801",
        None,
        fonenumber="(321) 555-1081",
        fonenumbers=["+13215551081"],
        id="listed, national",
    ),
    case(
        "3215551801",
        None,
        fonenumber=written("3215551081", FULLWIDTH),
        **US,
        id="listed, fullwidth",
    ),
    case(
        "3215551801",
        (
            FONE,
            "fonenumber '4075550123' (+14075550123) is not one of ours in "
            "BRIDGE_FONESTORM__FONENUMBERS",
        ),
        fonenumber="4075550123",
        fonenumbers=[OURS, "+13215551082"],
        id="unlisted fonenumber",
    ),
    case(
        "3215551801",
        (FONE_INVALID, f"fonenumber 'ours' has 'o' at position 0; {ONLY}"),
        fonenumber="ours",
        **US,
        id="fonenumber not a number",
    ),
    case(
        "3215551801",
        (FONE_INVALID, "fonenumber '3215551081#1' has '#' at position 10"),
        fonenumber="3215551081#1",
        **US,
        id="fonenumber with an extension",
    ),
    case(
        "3215551801",
        (FONE_INVALID, "has ';'"),
        fonenumber="3215551081;1",
        **ANYWHERE,
        id="fonenumber checked with no FoneNumbers listed",
    ),
    case(
        "3215551801",
        None,
        fonenumber="4075550123",
        worker={"allowed_destinations": ["US"]},
        id="any valid fonenumber with no FoneNumbers listed",
    ),
    case(
        "+19005550199",
        (FONE, "4075550123"),
        fonenumber="4075550123",
        **US,
        id="fonenumber checked first",
    ),
    # denied prefixes, whatever else allows it
    case(
        "+13215551801",
        (
            DEST,
            "to '+13215551801' (+13215551801) starts with the denied prefix +1321 in "
            "BRIDGE_WORKER__DENIED_DESTINATIONS",
        ),
        **US,
        worker={"denied_destinations": ["+1321"]},
        id="denied prefix",
    ),
    case(
        "3215551801",
        (DEST, "starts with the denied prefix +1321"),
        worker={"allowed_destinations": ["*"], "denied_destinations": ["+1 321"]},
        id="denied over *, national format",
    ),
    case(
        "+442079460958",
        None,
        worker={"allowed_destinations": ["*"], "denied_destinations": ["+1321"]},
        id="not denied",
    ),
    case(
        "+1 900 555 0199",
        (DEST, "denied prefix +1900"),
        **US,
        worker={"denied_destinations": ["+1900"]},
        id="denied prefix named before premium-rate",
    ),
]


@pytest.mark.parametrize(("cmd", "fonenumbers", "worker", "expected"), TABLE)
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
        assert got[0] == code, got
        assert fragment in got[1], got[1]


def test_national_numbers_are_read_in_the_default_region() -> None:
    uk = command(fonenumber="020 7946 0958", to="020 7946 0959")
    listed = ["+442079460958"]
    settings = WorkerSettings()
    assert refusal(uk, fonenumbers=listed, worker_settings=settings, region="GB") is None
    refused = refusal(uk, fonenumbers=listed, worker_settings=settings, region="US")
    assert refused is not None
    assert refused[0] == FONE_INVALID


@pytest.mark.parametrize(
    ("fonenumber", "to", "region", "sent"),
    [
        (OURS, "3215551801", "US", ("+13215551081", "+13215551801")),
        ("(321) 555-1081", "+1 321-555-1801", "US", ("+13215551081", "+13215551801")),
        (OURS, "011 44 20 7946 0958", "US", ("+13215551081", "+442079460958")),
        ("020 7946 0958", "07400 123456", "GB", ("+442079460958", "+447400123456")),
        (
            written("+13215551081", FULLWIDTH),
            written("321 555 1801", ARABIC_INDIC),
            "US",
            ("+13215551081", "+13215551801"),
        ),
    ],
)
def test_what_is_dialled_is_e164(
    fonenumber: str, to: str, region: str, sent: tuple[str, str]
) -> None:
    assert dialled(command(fonenumber, to), region) == sent


@pytest.mark.parametrize(
    ("fonenumber", "to"),
    [(OURS, "+19005550100#"), (OURS, "44 909 879 0000"), ("3215551081;1", "3215551801")],
)
def test_a_refused_number_is_never_dialled(fonenumber: str, to: str) -> None:
    with pytest.raises(ValueError, match="not dialable"):
        dialled(command(fonenumber, to), "US")


def test_the_numbers_of_the_other_tests_are_placed_with_a_us_fonenumber() -> None:
    """The suite's workers run with FoneNumber 3215551081 and must keep placing these."""
    settings = WorkerSettings()
    for to in (
        "3215551801",
        "3215551802",
        "3215550009",
        "3215550100",
        "4075550123",
        "+13215551234",
        "+14105550001",
        "+14105552999",
    ):
        got = refusal(command(to=to), fonenumbers=[OURS], worker_settings=settings, region="US")
        assert got is None, (to, got)


@pytest.mark.parametrize(
    ("fonenumbers", "worker", "closed", "said"),
    [
        ([], {}, True, "the worker will refuse every command"),
        (["+15550100"], {}, True, "the worker will refuse every command"),
        (
            [OURS],
            {},
            False,
            "to: US; denied prefixes: none; premium-rate, shared-cost and "
            "non-geographic numbers refused",
        ),
        (
            [OURS],
            {"allowed_destinations": ["CA", "+44"], "denied_destinations": ["+1976"]},
            False,
            "to: CA, US, +44; denied prefixes: +1976",
        ),
        (
            [],
            {"allowed_destinations": ["*"], "deny_premium_rate": False},
            False,
            "to: every country; denied prefixes: none; premium-rate, shared-cost and "
            "non-geographic numbers allowed",
        ),
    ],
)
def test_policy_summary(
    fonenumbers: list[str], worker: dict[str, Any], closed: bool, said: str
) -> None:
    got = policy_summary(fonenumbers, WorkerSettings.model_validate(worker), "US")
    assert got[0] is closed
    assert said in got[1], got[1]


@pytest.mark.parametrize(
    ("entries", "stored"),
    [
        (["+1", "+44 20"], ["+1", "+4420"]),
        (["ca", " GB "], ["CA", "GB"]),
        (["*"], ["*"]),
        (["*", "+44", "JM"], ["*", "+44", "JM"]),
    ],
)
def test_allowed_destinations_are_countries_prefixes_or_anywhere(
    entries: list[str], stored: list[str]
) -> None:
    assert WorkerSettings(allowed_destinations=entries).allowed_destinations == stored


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("44", 'is not an ISO country code ("CA"), "*" or an E.164 prefix'),
        ("+", "is not an ISO country code"),
        ("+44a", "is not an ISO country code"),
        ("+1234567890123456", "is not an ISO country code"),
        ("all", "is not an ISO country code"),
        ("XX", "'XX' is not a country libphonenumber knows"),
    ],
)
def test_allowed_destinations_refuse_anything_else(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        WorkerSettings(allowed_destinations=[entry])


@pytest.mark.parametrize("prefix", ["44", "+", "+44a", "+1234567890123456", "*", "GB"])
def test_denied_destinations_are_e164_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match=r"is not an E\.164 prefix"):
        WorkerSettings(denied_destinations=[prefix])


def test_prefixes_are_compacted() -> None:
    settings = WorkerSettings(allowed_destinations=["+1", "+44 20"], denied_destinations=["+1-900"])
    assert settings.allowed_destinations == ["+1", "+4420"]
    assert settings.denied_destinations == ["+1900"]
