"""``--since`` and ``--until``: a duration ago (``90s``, ``2h``, ``7d``, ``1h30m``) or a time.

Pure, so the rules are tested as a table; the command line passes the current time in.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``7d``, ``2w`` or a sum such as ``1h30m``; ValueError otherwise."""
    compact = text.strip().lower()
    if not _DURATION.fullmatch(compact):
        raise ValueError(
            f"{text!r} is not a duration: a number and a unit (s, m, h, d, w), e.g. 90s, 2h, 1h30m"
        )
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(compact))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} reaches further back than the calendar") from None


def parse_when(text: str, now: datetime) -> datetime:
    """A moment: ``now`` minus a duration, or an ISO 8601 time (UTC when it names no offset)."""
    stripped = text.strip()
    if _DURATION.fullmatch(stripped.lower()):
        try:
            return now - parse_duration(stripped)
        except OverflowError:
            raise ValueError(f"{text!r} reaches further back than the calendar") from None
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (90s, 30m, 2h, 7d) nor an ISO time "
            "(2026-11-26T16:00:00Z)"
        ) from None
    # A bare time is read as UTC, as every time the bridge writes is.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def to_millis(moment: datetime) -> int:
    """Kafka's timestamps: milliseconds since the epoch; 0 for any time before it (Kafka has
    none, and refuses to look one up)."""
    return max(0, int(moment.timestamp() * 1000))
