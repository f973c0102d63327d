"""Phone numbers in E.164: the one normaliser of the receiver and the worker.

Correlation compares the numbers the worker writes to the ledger with those of FoneStorm's
callbacks, so both sides must read a number the same way; this module is that one way.
"""

from __future__ import annotations

import functools

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
