"""Phone numbers in E.164: the one normaliser of the receiver and the worker; masks for logs.

Correlation compares the numbers the worker writes to the ledger with those of FoneStorm's
callbacks, so both sides must read a number the same way; this module is that one way.
Logs show numbers masked (:func:`mask_numbers`, applied to every line by ``bridge.obs.logs``)
unless ``BRIDGE_LOG__FULL_PHONE_NUMBERS`` is true.
"""

from __future__ import annotations

import functools
import re

import phonenumbers


@functools.lru_cache(maxsize=65536)
def _parse(number: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    return parsed if phonenumbers.is_possible_number(parsed) else None


@functools.lru_cache(maxsize=65536)
def to_e164(number: str, region: str) -> str | None:
    """E.164 form of ``number`` (national numbers read in ``region``), or None if not a number.

    Cached: phonenumbers' parser is the costliest step of a callback, and the same numbers
    (our FoneNumbers above all) come back in every callback and command.
    """
    parsed = _parse(number, region)
    if parsed is None:
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def number_type(number: str, region: str) -> int | None:
    """libphonenumber's ``PhoneNumberType`` of ``number``, or None if not a number."""
    parsed = _parse(number, region)
    return None if parsed is None else int(phonenumbers.number_type(parsed))


#: Digits a masked number keeps (its last ones).
KEPT_DIGITS = 4

# A phone number in free text: an optional `+` or `(`, then 8 to 15 digits (counted in
# _masked_match) with at most two of ` ()-` between any two. Not inside a word, a dotted or
# colon-separated run (IP addresses, times, versions) or a dash-joined id (UUIDs).
_NUMBER = re.compile(
    r"(?<![\w.:@/+])(?<!\w-)"
    r"\+?\(?\d(?:[ ()-]{0,2}\d)+"
    r"(?![\w@/]|[.:-]\w)"
)
_MIN_DIGITS, _MAX_DIGITS = 8, 15


def mask(number: str) -> str:
    """``number`` with every digit but the last four replaced by ``*`` (``+*******0100``)."""
    hide = sum(c.isdigit() for c in number) - KEPT_DIGITS
    out = []
    for c in number:
        if hide > 0 and c.isdigit():
            out.append("*")
            hide -= 1
        else:
            out.append(c)
    return "".join(out)


def _masked_match(match: re.Match[str]) -> str:
    text = match.group()
    digits = sum(c.isdigit() for c in text)
    return mask(text) if _MIN_DIGITS <= digits <= _MAX_DIGITS else text


def mask_numbers(text: str) -> str:
    """``text`` with every phone number in it masked by :func:`mask`.

    A heuristic for log lines: a run of 8 to 15 digits, alone or written with spaces, dashes or
    parentheses between groups (``+1 (321) 555-0100``), is taken for a number; digits inside
    identifiers, IP addresses, times and UUIDs are not.
    """
    return _NUMBER.sub(_masked_match, text) if any(c.isdigit() for c in text) else text
