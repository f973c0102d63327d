"""Pure helpers of the FoneStorm API: the GET callback URL template and ``Retry-After``."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urlsplit, urlunsplit

#: Every field of FoneStorm's callback data, in the order of the API documentation.
CALLBACK_FIELDS: tuple[str, ...] = (
    "uid",
    "account_code",
    "direction",
    "status",
    "from",
    "to",
    "type",
    "disposition",
    "billable_seconds",
)


def build_get_template(url: str) -> str:
    """``url`` plus a query that maps every callback field to a parameter of the same name.

    FoneStorm fills ``{{field}}`` tokens in GET callback URLs, so the braces stay literal.
    Parameters of ``url`` named like a callback field are dropped: the template's mapping must
    win, and that also makes the function idempotent.
    """
    parts = urlsplit(url)
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and unquote(pair.split("=", 1)[0]) not in CALLBACK_FIELDS
    ]
    tokens = [f"{field}={{{{{field}}}}}" for field in CALLBACK_FIELDS]
    return urlunsplit(parts._replace(query="&".join(kept + tokens)))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), else ``None``."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # RFC 9110 only allows digits; fractions are tolerated, nonsense is ignored.
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
