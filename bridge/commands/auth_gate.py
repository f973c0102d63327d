"""Closed while FoneStorm refuses our API token; meanwhile one command at a time probes for it.

A 401 (or no token configured) closes the gate. While it is closed, the only create-call
request that goes out is the probe's: the one command holding the probe sends, at most once
per ``BRIDGE_WORKER__AUTH_RETRY_INTERVAL``. The probe belongs to an attempt, not a command: when
the attempt ends, however it ends (refused again, expired, a final 4xx, revoked, cancelled),
the next command waiting at the gate takes it, so no probe depends on one command living on.
The worker keeps one command in hand to probe with (:func:`records_to_start`): a probe is
always a real command, never a create-call made up to test the token.

Any FoneStorm answer other than a 401 or a 403 reopens the gate: a 2xx, a 4xx or a 5xx that
is not an auth refusal means the token got past FoneStorm's check. A 403 neither opens nor
closes it: it refuses one request (its FoneNumber, its destination) and fails that command
alone, and it proves nothing about the token either way. No answer (timeout, connection lost)
leaves the gate as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from bridge.contracts.base import utcnow

log = logging.getLogger(__name__)


class Effect(enum.Enum):
    """What one create-call outcome does to the gate."""

    CLOSE = "close"
    REOPEN = "reopen"
    KEEP = "keep"


def effect(*, status: int | None, refused: bool) -> Effect:
    """What a create-call outcome says about our token.

    ``status`` is the HTTP status FoneStorm answered (``None``: no answer, or nothing sent);
    ``refused`` is true for an auth refusal (a 401, or no token configured).
    """
    if refused:
        return Effect.CLOSE
    if status is None or status == 403:
        return Effect.KEEP
    return Effect.REOPEN


def records_to_start(*, gate_open: bool, in_hand: int, free: int) -> int:
    """How many command records the consume loop may start now, ``free`` slots left.

    While the gate is closed, every command in hand either probes or waits to, and each
    waiting one takes the probe in turn. With none in hand nobody would probe: one record is
    started to do it.
    """
    if gate_open:
        return free
    return min(free, 1) if in_hand == 0 else 0


class AuthGate:
    """Open while FoneStorm accepts our token; closed, it lets one probe through at a time."""

    def __init__(
        self, retry_interval: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = retry_interval
        self._clock = clock
        self._open = True
        self._changed = asyncio.Event()
        self._prober: object | None = None
        self._next_probe = 0.0
        #: FoneStorm's last refusal, while the gate is closed.
        self.reason = ""
        self.closed_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """True while the token is believed good."""
        return self._open

    @property
    def probing(self) -> bool:
        """A command holds the probe now."""
        return self._prober is not None

    def describe(self) -> str:
        """Why the gate is closed, for ``/readyz``; empty while it is open."""
        if self._open:
            return ""
        since = self.closed_at.isoformat(timespec="seconds") if self.closed_at else "?"
        return (
            f"FoneStorm refuses the API token since {since} ({self.reason}); one command "
            f"retries every {self._interval:g}s; fix BRIDGE_FONESTORM__TOKEN"
        )

    def observe(self, *, status: int | None, refused: bool, reason: str) -> None:
        """A create-call request failed: ``status`` as in :func:`effect`."""
        match effect(status=status, refused=refused):
            case Effect.REOPEN:
                self.reopen()
                return
            case Effect.CLOSE:
                self.close(reason)
            case Effect.KEEP:
                pass
        if not self._open:
            # Every request while closed counts as the probe: the next one waits its turn.
            self._next_probe = self._clock() + self._interval

    def close(self, reason: str) -> None:
        """FoneStorm refused the token."""
        if self._open:
            log.error(
                "FoneStorm refused the API token (%s): pausing command consumption; fix "
                "BRIDGE_FONESTORM__TOKEN. One command retries every %gs.",
                reason,
                self._interval,
            )
            self.closed_at = utcnow()
        self.reason = reason
        self._open = False
        self._next_probe = self._clock() + self._interval
        self._notify()

    def reopen(self) -> None:
        """FoneStorm took a request with the token."""
        if not self._open:
            log.info("FoneStorm accepts the API token again: resuming")
        self.reason = ""
        self.closed_at = None
        self._open = True
        self._notify()

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Until this caller may send a create-call: the gate is open, or it holds the probe.

        The probe is held until the context exits; it passes to the longest waiter then.
        """
        lease = object()
        while not self._open and self._prober is not None:
            await self._changed.wait()
        if not self._open:
            self._prober = lease
        try:
            while self._prober is lease and not self._open:
                delay = self._next_probe - self._clock()
                if delay <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._changed.wait()
            yield
        finally:
            if self._prober is lease:
                self._prober = None
                self._notify()

    def _notify(self) -> None:
        # Wakes every waiter in the order they came; each looks at the state again.
        self._changed.set()
        self._changed = asyncio.Event()
