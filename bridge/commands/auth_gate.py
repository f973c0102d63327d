"""Closed while FoneStorm refuses our API token: no create-call request goes out meanwhile."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class AuthGate:
    """Closed while FoneStorm refuses our token; the worker pauses consumption meanwhile."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self.reason = ""

    @property
    def is_open(self) -> bool:
        """True while the token is believed good."""
        return self._open.is_set()

    def close(self, reason: str) -> None:
        """FoneStorm said 401/403."""
        if self.is_open:
            log.error(
                "FoneStorm refused the API token (%s): pausing command consumption; fix "
                "BRIDGE_FONESTORM__TOKEN. Retrying periodically.",
                reason,
            )
        self.reason = reason
        self._open.clear()

    def reopen(self) -> None:
        """A request with the token succeeded."""
        if not self.is_open:
            log.info("FoneStorm accepts the API token again: resuming")
        self.reason = ""
        self._open.set()

    async def wait(self) -> None:
        """Until the gate is open."""
        await self._open.wait()
