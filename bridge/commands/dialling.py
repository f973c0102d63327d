"""Whether a command's number can be dialled, and in which E.164 form: a pure function.

A number goes to FoneStorm only in the E.164 form made here, never as the command spelt it,
and only when it is one plain, valid number. libphonenumber alone is too lenient for that: it
reads ``#``, ``;`` or ``x`` as the start of an extension and drops what follows, skips leading
and trailing text, and turns letters into digits, so a dial string could pass as the number
it starts with. So the text is checked first, character by character:

* digits of any script (fullwidth, Arabic-Indic, Devanagari …) are read as ASCII digits;
* spaces, ``-`` (and the Unicode dashes), ``.``, ``/``, ``(`` and ``)`` are separators;
* one ``+`` may come before the first digit;
* anything else (``#``, ``*``, ``;``, ``,``, ``w``, ``p``, ``x``, ``ext``, letters, control or
  invisible characters) refuses the number: it would dial an extension, a pause, a tone or a
  second number, or it hides what is dialled.

Then libphonenumber must find a valid number of a known type (not ``UNKNOWN``) without an
extension.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import NamedTuple

import phonenumbers
from phonenumbers import PhoneNumberType

#: Longer input is refused before it is read: a number with generous formatting fits well
#: within it (E.164 has at most 15 digits, and an international prefix adds 3).
MAX_INPUT_CHARS = 64

_SEPARATORS = frozenset(" -./()\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
_REASONS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "no such country code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "no number there has that length",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too short: a local number only",
}


_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "no such country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the IDD prefix",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


class Dialable(NamedTuple):
    """A number fit to dial."""

    e164: str
    #: ISO 3166 region of the number (``"GB"``), or ``"001"`` for a non-geographic one.
    region: str
    country_code: int
    #: libphonenumber's ``PhoneNumberType``.
    type: int


class Undialable(NamedTuple):
    """Why a number is not fit to dial: completes "``to '…'`` …"."""

    reason: str


@functools.lru_cache(maxsize=65536)
def dialable(raw: str, region: str) -> Dialable | Undialable:
    """``raw`` (a national number read in ``region``) as a number to dial, or why it is not.

    Cached: the same numbers (our FoneNumbers above all) come back in every command.
    """
    if len(raw) > MAX_INPUT_CHARS:
        return Undialable(f"is {len(raw)} characters long, over the {MAX_INPUT_CHARS} of a number")
    text = _plain(raw)
    return text if isinstance(text, Undialable) else _read(text, region)


def _read(text: str, region: str) -> Dialable | Undialable:
    """libphonenumber's reading of ``text``, plain digits and separators, if fit to dial."""
    if not any(char.isdigit() for char in text):
        return Undialable("has no digits")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        why = _PARSE_ERRORS.get(exc.error_type, "unreadable")
        return Undialable(f"is not a phone number (read in region {region}: {why})")
    if number.extension:
        return Undialable(f"has an extension ({number.extension})")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(number):
        why = _REASONS.get(
            phonenumbers.is_possible_number_with_reason(number), "no such number range"
        )
        return Undialable(f"is not a valid number ({e164}, read in region {region}: {why})")
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        return Undialable(f"({e164}) is of a type libphonenumber does not know")
    where = phonenumbers.region_code_for_number(number) or phonenumbers.UNKNOWN_REGION
    return Dialable(e164, where, number.country_code or 0, int(kind))


def _plain(raw: str) -> str | Undialable:
    """``raw`` with its digits in ASCII, or the first character that has no place in it."""
    out: list[str] = []
    seen_digit = seen_plus = False
    for position, char in enumerate(raw):
        if char.isdecimal():
            out.append(str(unicodedata.decimal(char)))
            seen_digit = True
            continue
        # Fullwidth and other compatibility forms of the separators and of "+".
        folded = unicodedata.normalize("NFKC", char)
        if folded in _SEPARATORS or (folded.isspace() and unicodedata.category(char) == "Zs"):
            out.append(" " if folded.isspace() else folded)
            continue
        if folded == "+" and not seen_digit and not seen_plus:
            out.append("+")
            seen_plus = True
            continue
        return Undialable(
            f"has {char!r} at position {position}; only digits, spaces, '-', '.', '/', '(', ')' "
            "and a leading '+' are dialled (no extension, pause, tone or second number)"
        )
    return "".join(out)
