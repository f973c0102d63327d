"""dialable(): which strings are one plain, valid number to dial, and its E.164, as a table."""

from __future__ import annotations

import pytest
from phonenumbers import PhoneNumberType

from bridge.commands.dialling import MAX_INPUT_CHARS, Dialable, Undialable, dialable
from tests.support.digits import ARABIC_INDIC, DEVANAGARI, FULLWIDTH, written

FIXED = PhoneNumberType.FIXED_LINE
MOBILE = PhoneNumberType.MOBILE
EITHER = PhoneNumberType.FIXED_LINE_OR_MOBILE
PREMIUM = PhoneNumberType.PREMIUM_RATE
SHARED = PhoneNumberType.SHARED_COST
VOIP = PhoneNumberType.VOIP
TOLL_FREE = PhoneNumberType.TOLL_FREE

ONLY = "only digits, spaces, '-', '.', '/', '(', ')' and a leading '+' are dialled"


# (raw, region of national numbers, expected E.164, region, type) for numbers fit to dial.
VALID = [
    # the United States, as commands spell it
    ("3215551801", "US", "+13215551801", "US", EITHER),
    ("(321) 555-1801", "US", "+13215551801", "US", EITHER),
    ("321.555.1801", "US", "+13215551801", "US", EITHER),
    ("1-321-555-1801", "US", "+13215551801", "US", EITHER),
    ("+1 321 555 1801", "US", "+13215551801", "US", EITHER),
    ("+13215551801", "US", "+13215551801", "US", EITHER),
    ("+1 800 555 0199", "US", "+18005550199", "US", TOLL_FREE),
    ("+1 900 555 0199", "US", "+19005550199", "US", PREMIUM),
    # other countries, in E.164 and national formats
    ("+44 20 7946 0958", "US", "+442079460958", "GB", FIXED),
    ("(+44) 20 7946 0958", "US", "+442079460958", "GB", FIXED),
    ("011 44 20 7946 0958", "US", "+442079460958", "GB", FIXED),
    ("020 7946 0958", "GB", "+442079460958", "GB", FIXED),
    ("07400 123456", "GB", "+447400123456", "GB", MOBILE),
    ("+44 909 879 0000", "US", "+449098790000", "GB", PREMIUM),
    ("+33 1 42 68 53 00", "US", "+33142685300", "FR", FIXED),
    ("+33 8 84 01 23 45", "US", "+33884012345", "FR", SHARED),
    ("+49 30 123456", "US", "+4930123456", "DE", FIXED),
    ("+81 3-1234-5678", "US", "+81312345678", "JP", FIXED),
    ("+91 98765 43210", "US", "+919876543210", "IN", MOBILE),
    ("+55 11 96123-4567", "US", "+5511961234567", "BR", MOBILE),
    ("+61 2 1234 5678", "US", "+61212345678", "AU", FIXED),
    ("+1 876 555 0123", "US", "+18765550123", "JM", MOBILE),
    ("+1 613 555 0123", "US", "+16135550123", "CA", EITHER),
    # non-geographic "country codes": valid numbers of no country
    ("+979 1 234 56789", "US", "+979123456789", "001", PREMIUM),
    ("+881 6 1234 5678", "US", "+881612345678", "001", MOBILE),
    ("+882 34 2123 4", "US", "+8823421234", "001", MOBILE),
    ("+883 510 012 345", "US", "+883510012345", "001", VOIP),
    ("+808 1234 5678", "US", "+80812345678", "001", SHARED),
    # Unicode digits and separators: read as ASCII, never passed on
    (
        written("3215551801", FULLWIDTH),
        "US",
        "+13215551801",
        "US",
        EITHER,
    ),
    (
        written("+1 (321) 555-1801", FULLWIDTH),
        "US",
        "+13215551801",
        "US",
        EITHER,
    ),
    (
        written("3215551801", ARABIC_INDIC),
        "US",
        "+13215551801",
        "US",
        EITHER,
    ),
    (
        written("3215551801", DEVANAGARI),
        "US",
        "+13215551801",
        "US",
        EITHER,
    ),
    ("321\u00a0555\u00a01801", "US", "+13215551801", "US", EITHER),
    ("321\u2013555\u20131801", "US", "+13215551801", "US", EITHER),
    ("+44\u300020\u30007946\u30000958", "US", "+442079460958", "GB", FIXED),
]


@pytest.mark.parametrize(("raw", "region", "e164", "where", "kind"), VALID)
def test_valid_numbers_are_dialled_in_e164(
    raw: str, region: str, e164: str, where: str, kind: int
) -> None:
    got = dialable(raw, region)
    assert isinstance(got, Dialable), got
    assert (got.e164, got.region, got.type) == (e164, where, kind)
    assert got.e164.isascii()
    assert got.e164.startswith(f"+{got.country_code}")


def _char(char: str, position: int) -> str:
    return f"has {char!r} at position {position}; {ONLY}"


# (raw, the reason, or a fragment of it) for strings that must not be dialled.
REFUSED = [
    # dial strings: an extension, a pause, a tone, a second number
    ("+19005550100#", _char("#", 12)),
    ("+1 900 555 0100;a", _char(";", 15)),
    ("+44 909 879 0000#", _char("#", 16)),
    ("3215551801#123", _char("#", 10)),
    ("3215551801;ext=123", _char(";", 10)),
    ("3215551801,123", _char(",", 10)),
    ("3215551801w123", _char("w", 10)),
    ("3215551801p123", _char("p", 10)),
    ("3215551801 x123", _char("x", 11)),
    ("3215551801 ext. 123", _char("e", 11)),
    ("*67 3215551801", _char("*", 0)),
    ("tel:+13215551801", _char("t", 0)),
    ("+1-800-FLOWERS", _char("F", 7)),
    ("1+3215551801", _char("+", 1)),
    ("++13215551801", _char("+", 1)),
    ("3215551801\n", _char("\n", 10)),
    ("321555\u200b1801", _char("\u200b", 6)),
    ("\u00b93215551801", _char("\u00b9", 0)),  # superscript one: not a decimal digit
    ("\u2460 3215551801", _char("\u2460", 0)),  # circled one
    # not one valid number
    ("44 909 879 0000", "is not a valid number (+1449098790000, read in region US: too long)"),
    ("+88163123456", "is not a valid number (+88163123456, read in region US: too short)"),
    ("+15550101", "is not a valid number (+15550101, read in region US: too short: a local"),
    ("+1 555 0100", "is not a valid number (+15550100"),
    ("12", "is not a valid number (+112, read in region US: too short)"),
    ("1", "is not a phone number (read in region US: not a number)"),
    ("+999 1234 5678", "is not a phone number (read in region US: no such country code)"),
    ("+1 321 555 1801 3215551802", "is not a phone number (read in region US: too long)"),
    ("+44 20 7946 095", "is not a valid number (+44207946095"),
    ("", "has no digits"),
    ("   ", "has no digits"),
    ("+", "has no digits"),
    ("()-", "has no digits"),
    ("9" * MAX_INPUT_CHARS + "9", f"is {MAX_INPUT_CHARS + 1} characters long"),
    ("3" * 10_000, "is 10000 characters long"),
    ("#" * 1_000_000, "is 1000000 characters long"),
]


@pytest.mark.parametrize(("raw", "reason"), REFUSED)
def test_anything_but_one_plain_valid_number_is_refused(raw: str, reason: str) -> None:
    got = dialable(raw, "US")
    assert isinstance(got, Undialable), got
    assert reason in got.reason, got.reason


def test_national_numbers_are_read_in_the_region_given() -> None:
    assert dialable("020 7946 0958", "GB") == dialable("+44 20 7946 0958", "US")
    got = dialable("020 7946 0958", "US")
    assert isinstance(got, Undialable)
    assert "read in region US" in got.reason
