"""Logging set-up: JSON lines in production, with the call or command id on every line about one.

Handlers set context with :func:`log_context`; a filter copies it onto every record, so
``log.info("produced")`` inside a callback carries ``call_id`` without passing it around.
Another can rewrite every message and traceback (:class:`MaskFilter`): the CLI masks phone
numbers with it, so no call site has to remember to.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "bridge_log_context", default=MappingProxyType({})
)

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is emitted.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


class log_context:  # noqa: N801 - used like the function it replaced
    """Attach ``fields`` (e.g. ``call_id``) to every log line emitted inside the block.

    A class rather than ``@contextmanager``: it wraps every callback, and a generator-based
    context manager cost several times more.
    """

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: str | None) -> None:
        # ``fields`` is this call's own dict: kept as it is unless a value must be dropped.
        if None in fields.values():
            fields = {k: v for k, v in fields.items() if v is not None}
        self._fields: Mapping[str, str] = fields  # type: ignore[assignment]

    def __enter__(self) -> None:
        parent = _context.get()
        self._token = _context.set({**parent, **self._fields} if parent else self._fields)

    def __exit__(self, *exc_info: object) -> None:
        _context.reset(self._token)


def bind_log_context(**fields: str | None) -> None:
    """Add fields to the current task's log context (a task gets a copy of its parent's)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


class ContextFilter(logging.Filter):
    """Copies the current log context onto the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach context fields; never drops a record."""
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines for local runs, context fields appended."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as text with ``key=value`` context."""
        line = super().format(record)
        extras = [
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        ]
        return f"{line} {' '.join(extras)}" if extras else line


class MalformedHttpFilter(logging.Filter):
    """aiohttp logs every unparseable request at ERROR with a traceback; make it one WARNING.

    It is the client's fault (scanners, broken proxies) and already answered 400; a traceback
    per request would page people and flood the logs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite records about malformed HTTP; keep every record."""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and exc.code == 400:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "malformed HTTP request refused with 400 (%s): %s"
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.args = (remote, exc.message.split("\n")[0])
            record.exc_info = record.exc_text = None
        return True


class MaskFilter(logging.Filter):
    """Rewrites a record's rendered message and traceback with ``mask`` (e.g. hiding numbers).

    What must not be logged (phone numbers) reaches log lines as arguments and inside messages
    (a refused command's reason, an error FoneStorm answered), from the bridge and from its
    libraries; one filter on the handler sees them all. Context and ``extra`` fields are ids
    and are left alone.
    """

    def __init__(self, mask: Callable[[str], str]) -> None:
        super().__init__()
        self._mask = mask

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops one."""
        message = record.getMessage()
        masked = self._mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        return True


_TRACEBACKS = logging.Formatter()


def setup_logging(
    level: str = "INFO", fmt: str = "json", *, mask: Callable[[str], str] | None = None
) -> None:
    """Configure the root logger once for the process; ``mask`` rewrites every line's text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if mask is not None:
        handler.addFilter(MaskFilter(mask))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka's INFO is chatter; its reconnect attempts are folded by bridge.kafka.broker_watch.
    logging.getLogger("aiokafka").setLevel(max(logging.getLevelName(level), logging.WARNING))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedHttpFilter) for f in server.filters):
        server.addFilter(MalformedHttpFilter())


class Throttle:
    """At most one log line per ``interval`` seconds for a repeated event, with a count.

    For events a stranger can cause at will (a wrong password): logging each would let anyone
    flood the logs. The metric counts every one; the log says how many since the last line.
    """

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = float("-inf")
        self._count = 0

    def hit(self, now: float) -> int | None:
        """Count one event; the number of events to report now, or None to stay quiet."""
        self._count += 1
        if now < self._next:
            return None
        count, self._count = self._count, 0
        self._next = now + self._interval
        return count
