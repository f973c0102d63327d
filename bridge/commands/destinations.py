"""Which calls the worker refuses to place, and the numbers it dials: pure functions.

Whoever can produce to the command topic can otherwise make the worker ring any number from
any FoneNumber, premium-rate numbers above all (toll fraud). So, before a call is placed:

* its ``fonenumber`` and its ``to`` must each be one plain, valid number
  (:mod:`bridge.commands.dialling`; error codes ``fonenumber_invalid``, ``destination_invalid``);
* its ``fonenumber`` must be one of ``BRIDGE_FONESTORM__FONENUMBERS`` when that is set
  (``fonenumber_not_allowed``);
* its ``to`` (``destination_not_allowed``) must not start with any of
  ``BRIDGE_WORKER__DENIED_DESTINATIONS``; while ``BRIDGE_WORKER__DENY_PREMIUM_RATE`` is on it
  must not be premium-rate, shared-cost or non-geographic; and it must be in a country of one
  of our FoneNumbers or in ``BRIDGE_WORKER__ALLOWED_DESTINATIONS`` (``*``: every country).
  With neither set, every destination is refused.

A country is libphonenumber's region of the number, not its calling code: ``+1`` is shared by
the US, Canada and many Caribbean countries, ``+44`` by the UK and the Crown
Dependencies, and calls to those are charged and abused differently.

Non-geographic "country codes" (+800, +808, +870, +878, +881, +882, +883, +888, +979) belong
to no country, so no FoneNumber's country covers them; while premium-rate denial is on they are
refused even with ``*``. +979 is international premium rate and +808 international shared
cost; +870 (Inmarsat), +881 (satellite phones) and +882/+883 (global networks, satellite and
maritime among them) cost many times a normal call, and these ranges are the usual targets of
international revenue share fraud; +878 (personal numbers) and +888 (humanitarian relief)
are not for notifications either, and +800 (international freephone) is not free from every
network. A worker placing
notifications has no use for any of them, and one that does can turn the denial off.

Numbers are read with national ones in ``BRIDGE_CALLBACKS__DEFAULT_REGION`` and sent to
FoneStorm in E.164 only (:func:`dialled`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from phonenumbers import PhoneNumberType

from bridge.commands.dialling import Dialable, Undialable, dialable
from bridge.contracts.commands import PlaceCallCommand
from bridge.phone import number_type, to_e164
from bridge.settings import ANY_DESTINATION, WorkerSettings, env_name

FONENUMBER_INVALID = "fonenumber_invalid"
FONENUMBER_NOT_ALLOWED = "fonenumber_not_allowed"
DESTINATION_INVALID = "destination_invalid"
DESTINATION_NOT_ALLOWED = "destination_not_allowed"

#: libphonenumber's region of a number that belongs to no country.
NON_GEOGRAPHIC = "001"

_FONENUMBERS = env_name(("fonestorm", "fonenumbers"))
_ALLOWED = env_name(("worker", "allowed_destinations"))
_DENIED = env_name(("worker", "denied_destinations"))
_PREMIUM = env_name(("worker", "deny_premium_rate"))
_PREMIUM_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost (premium-rate) number",
}
_NON_GEOGRAPHIC_RANGES = {
    800: "international freephone",
    808: "international shared-cost",
    870: "Inmarsat satellite",
    878: "universal personal telecommunications",
    881: "global mobile satellite",
    882: "international networks",
    883: "international networks",
    888: "international humanitarian",
    979: "international premium-rate",
}


class Number(NamedTuple):
    """A phone number in E.164 and libphonenumber's type of it."""

    e164: str
    type: int


def parse(number: str, region: str) -> Number | None:
    """``number`` (national numbers read in ``region``) in E.164, or None if not a number.

    For the ledger's record of a command's numbers, which receivers compare with callbacks: a
    number fit to dial as it is dialled (so as FoneStorm will name it), any other read as
    callbacks are. Whether a number may be dialled is :func:`refusal`'s.
    """
    dialled = dialable(number, region)
    if isinstance(dialled, Dialable):
        return Number(dialled.e164, dialled.type)
    e164, kind = to_e164(number, region), number_type(number, region)
    return None if e164 is None or kind is None else Number(e164, kind)


class Destinations(NamedTuple):
    """Where calls may go: countries, E.164 prefixes, or anywhere."""

    countries: frozenset[str]
    prefixes: tuple[str, ...]
    anywhere: bool

    @property
    def none(self) -> bool:
        """Nothing is allowed: every destination is refused."""
        return not (self.countries or self.prefixes or self.anywhere)

    def admit(self, number: Dialable) -> bool:
        """``number`` is in one of the countries, starts with one of the prefixes, or anywhere."""
        return (
            self.anywhere
            or number.region in self.countries
            or number.e164.startswith(self.prefixes)
        )

    def describe(self) -> str:
        """The allowed destinations in words, for messages and the start-up log."""
        if self.anywhere:
            return "every country"
        return ", ".join([*sorted(self.countries), *self.prefixes]) or "none"


def allowed_destinations(
    fonenumbers: Sequence[str], worker_settings: WorkerSettings, region: str
) -> Destinations:
    """The countries of our FoneNumbers, widened by ``BRIDGE_WORKER__ALLOWED_DESTINATIONS``."""
    listed = worker_settings.allowed_destinations
    countries = {
        number.region
        for number in (dialable(f, region) for f in fonenumbers)
        if isinstance(number, Dialable) and number.region != NON_GEOGRAPHIC
    }
    countries.update(entry for entry in listed if entry.isalpha())
    return Destinations(
        countries=frozenset(countries),
        prefixes=tuple(entry for entry in listed if entry.startswith("+")),
        anywhere=ANY_DESTINATION in listed,
    )


def refusal(
    command: PlaceCallCommand,
    *,
    fonenumbers: Sequence[str],
    worker_settings: WorkerSettings,
    region: str,
) -> tuple[str, str] | None:
    """Why ``command`` must not be placed, as ``(error_code, message)``; None to place it."""
    fonenumber = dialable(command.fonenumber, region)
    if isinstance(fonenumber, Undialable):
        return FONENUMBER_INVALID, f"fonenumber {command.fonenumber!r} {fonenumber.reason}"
    if fonenumbers:
        listed = (dialable(f, region) for f in fonenumbers)
        ours = {n.e164 for n in listed if isinstance(n, Dialable)}
        if fonenumber.e164 not in ours:
            return (
                FONENUMBER_NOT_ALLOWED,
                f"fonenumber {command.fonenumber!r} ({fonenumber.e164}) is not one of ours in "
                f"{_FONENUMBERS}",
            )
    to = dialable(command.to, region)
    if isinstance(to, Undialable):
        return DESTINATION_INVALID, f"to {command.to!r} {to.reason}"
    why = _destination_refusal(
        to, allowed_destinations(fonenumbers, worker_settings, region), worker_settings
    )
    return None if why is None else (DESTINATION_NOT_ALLOWED, f"to {command.to!r} {why}")


def _destination_refusal(
    to: Dialable, allowed: Destinations, worker_settings: WorkerSettings
) -> str | None:
    shown = f"({to.e164})"
    for prefix in worker_settings.denied_destinations:
        if to.e164.startswith(prefix):
            return f"{shown} starts with the denied prefix {prefix} in {_DENIED}"
    if worker_settings.deny_premium_rate:
        if to.region == NON_GEOGRAPHIC:
            kind = _NON_GEOGRAPHIC_RANGES.get(to.country_code, "non-geographic")
            return (
                f"{shown} is a non-geographic number (+{to.country_code}: {kind}), refused "
                f"while {_PREMIUM}=true"
            )
        premium = _PREMIUM_TYPES.get(to.type)
        if premium is not None:
            return f"{shown} is {premium}, refused while {_PREMIUM}=true"
    if allowed.admit(to):
        return None
    if allowed.none:
        return (
            f"{shown} is refused: no destination is allowed, for {_FONENUMBERS} has no valid "
            f"number and {_ALLOWED} is empty (list countries or prefixes there, or "
            f'["{ANY_DESTINATION}"] for every country)'
        )
    return (
        f"({to.e164}, country {to.region}) is not in a country of our FoneNumbers nor in "
        f"{_ALLOWED} (allowed: {allowed.describe()})"
    )


def dialled(command: PlaceCallCommand, region: str) -> tuple[str, str]:
    """The ``fonenumber`` and ``to`` to send to FoneStorm, in E.164.

    Only for a command :func:`refusal` let through; raises ValueError for any other.
    """
    fonenumber, to = dialable(command.fonenumber, region), dialable(command.to, region)
    if isinstance(fonenumber, Dialable) and isinstance(to, Dialable):
        return fonenumber.e164, to.e164
    raise ValueError(f"not dialable: {command.fonenumber!r} to {command.to!r}")


def policy_summary(
    fonenumbers: Sequence[str], worker_settings: WorkerSettings, region: str
) -> tuple[bool, str]:
    """For the start-up log: whether every destination is refused, and the policy in words."""
    allowed = allowed_destinations(fonenumbers, worker_settings, region)
    if allowed.none:
        return True, (
            f"the worker will refuse every command: {_FONENUMBERS} has no valid number and "
            f"{_ALLOWED} is empty"
        )
    denied = ", ".join(worker_settings.denied_destinations) or "none"
    premium = "refused" if worker_settings.deny_premium_rate else "allowed"
    return False, (
        f"the worker places calls to: {allowed.describe()}; denied prefixes: {denied}; "
        f"premium-rate, shared-cost and non-geographic numbers {premium}"
    )
