"""Which calls the worker refuses to place: a pure function, tested as a table.

Whoever can produce to the command topic can otherwise make the worker ring any number from
any FoneNumber, premium-rate numbers included (toll fraud). So, before a call is placed:

* its ``fonenumber`` must be one of ``BRIDGE_FONESTORM__FONENUMBERS`` when that is set
  (error code ``fonenumber_not_allowed``);
* its ``to`` must start with one of ``BRIDGE_WORKER__ALLOWED_DESTINATIONS`` when that is set,
  must not start with any of ``BRIDGE_WORKER__DENIED_DESTINATIONS``, and must not be a
  premium-rate or shared-cost number while ``BRIDGE_WORKER__DENY_PREMIUM_RATE`` is on (error
  code ``destination_not_allowed``).

Numbers are compared in E.164, national ones read in ``BRIDGE_CALLBACKS__DEFAULT_REGION``. A
``to`` that is not a phone number is refused only when allowed prefixes are set; otherwise
FoneStorm judges it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from phonenumbers import PhoneNumberType

from bridge.contracts.commands import PlaceCallCommand
from bridge.phone import number_type, to_e164
from bridge.settings import WorkerSettings, env_name

FONENUMBER_NOT_ALLOWED = "fonenumber_not_allowed"
DESTINATION_NOT_ALLOWED = "destination_not_allowed"

_FONENUMBERS = env_name(("fonestorm", "fonenumbers"))
_ALLOWED = env_name(("worker", "allowed_destinations"))
_DENIED = env_name(("worker", "denied_destinations"))
_PREMIUM = env_name(("worker", "deny_premium_rate"))
_PREMIUM_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost (premium-rate) number",
}


class Number(NamedTuple):
    """A phone number in E.164 and libphonenumber's type of it."""

    e164: str
    type: int


def parse(number: str, region: str) -> Number | None:
    """``number`` (national numbers read in ``region``) in E.164, or None if not a number."""
    e164, kind = to_e164(number, region), number_type(number, region)
    return None if e164 is None or kind is None else Number(e164, kind)


def refusal(
    command: PlaceCallCommand,
    *,
    fonenumbers: Sequence[str],
    worker_settings: WorkerSettings,
    region: str,
) -> tuple[str, str] | None:
    """Why ``command`` must not be placed, as ``(error_code, message)``; None to place it."""
    if fonenumbers:
        ours = {n.e164 for n in (parse(f, region) for f in fonenumbers) if n is not None}
        number = parse(command.fonenumber, region)
        if number is None:
            return (
                FONENUMBER_NOT_ALLOWED,
                f"fonenumber {command.fonenumber!r} is not a phone number (read in region "
                f"{region}), so not one of ours in {_FONENUMBERS}",
            )
        if number.e164 not in ours:
            return (
                FONENUMBER_NOT_ALLOWED,
                f"fonenumber {command.fonenumber!r} ({number.e164}) is not one of ours in "
                f"{_FONENUMBERS}",
            )
    return _destination_refusal(command.to, worker_settings, region)


def _destination_refusal(
    to: str, worker_settings: WorkerSettings, region: str
) -> tuple[str, str] | None:
    allowed = worker_settings.allowed_destinations
    number = parse(to, region)
    if number is None:
        if not allowed:
            return None  # FoneStorm judges it (and answers 422 for a number it cannot call)
        return (
            DESTINATION_NOT_ALLOWED,
            f"to {to!r} is not a phone number (read in region {region}), so it does not start "
            f"with any of the allowed prefixes in {_ALLOWED} ({', '.join(allowed)})",
        )
    shown = f"to {to!r} ({number.e164})"
    if allowed and not number.e164.startswith(tuple(allowed)):
        return (
            DESTINATION_NOT_ALLOWED,
            f"{shown} does not start with any of the allowed prefixes in {_ALLOWED} "
            f"({', '.join(allowed)})",
        )
    for prefix in worker_settings.denied_destinations:
        if number.e164.startswith(prefix):
            return (
                DESTINATION_NOT_ALLOWED,
                f"{shown} starts with the denied prefix {prefix} in {_DENIED}",
            )
    kind = _PREMIUM_TYPES.get(number.type)
    if worker_settings.deny_premium_rate and kind is not None:
        return (
            DESTINATION_NOT_ALLOWED,
            f"{shown} is {kind}, refused while {_PREMIUM}=true",
        )
    return None
