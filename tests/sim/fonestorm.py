"""FoneStorm for the protocol simulation: calls counted per command, and every way to fail.

One :class:`SimFoneStorm` holds the calls; each worker process talks to it through its own
:class:`SimClient`, whose requests wait while the process is frozen. A request frozen after the
worker's last check and before it reaches FoneStorm is exactly the window a real SIGSTOP opens.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.errors import FoneStormAuthError, FoneStormRateLimited, FoneStormUnavailable
from bridge.fonestorm.client import CreatedCall, FoneStormClient
from tests.sim.kafka import Process

#: What a create-call request meets, with its weight.
FATES = {
    "ok": 70,
    "rate_limited": 8,  # nothing created
    "connect_failed": 6,  # nothing sent
    "server_error": 5,  # 503 before creating
    "create_then_500": 5,  # the call exists, the answer says 500
    "create_then_timeout": 6,  # the call exists, no answer in time
}


@dataclass
class Call:
    command_id: str | None
    #: When the worker issued the request (its last check came right before), by its own
    #: clock (seconds of virtual time, off by the process's skew).
    issued_at: float
    at: float


@dataclass
class SimFoneStorm:
    """The calls made, and a hook told of each (the simulation's invariant checks)."""

    calls: list[Call] = field(default_factory=list)
    on_call: list[Callable[[Call], None]] = field(default_factory=list)
    #: Until when (virtual time) FoneStorm refuses the token: 401 to every request.
    refusing_until: float = -1.0

    def per_command(self) -> Counter[str | None]:
        return Counter(c.command_id for c in self.calls)

    def create(self, command_id: str | None, issued_at: float) -> str:
        call = Call(command_id, issued_at, asyncio.get_running_loop().time())
        self.calls.append(call)
        for hook in self.on_call:
            hook(call)
        return f"call-{len(self.calls)}"


class SimClient(FoneStormClient):
    """The real client's ``create_call``, against :class:`SimFoneStorm`, as one process."""

    def __init__(
        self, fonestorm: SimFoneStorm, process: Process, *, read_timeout: float, skew: float = 0.0
    ) -> None:
        self._fonestorm = fonestorm
        self._process = process
        self._read_timeout = read_timeout
        self._skew = skew

    async def create_call(
        self,
        fonenumber: str,
        to: str,
        tts: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> CreatedCall:
        issued_at = asyncio.get_running_loop().time() + self._skew
        await self._process.io()
        rng = self._process.rng
        fate = rng.choices(list(FATES), weights=list(FATES.values()))[0]
        path = "POST /calls"
        if asyncio.get_running_loop().time() < self._fonestorm.refusing_until:
            raise FoneStormAuthError(f"{path}: 401", status=401)
        if fate == "rate_limited":
            raise FoneStormRateLimited(f"{path}: 429", retry_after=rng.uniform(0, 2))
        if fate == "connect_failed":
            raise FoneStormUnavailable(f"{path}: cannot connect", code="connect_failed")
        if fate == "server_error":
            raise FoneStormUnavailable(f"{path}: 503", status=503, code="server_error")
        call_id = self._fonestorm.create(idempotency_key, issued_at)
        if fate == "create_then_500":
            raise FoneStormUnavailable(f"{path}: 500", status=500, code="server_error")
        if fate == "create_then_timeout":
            await asyncio.sleep(self._read_timeout)
            raise FoneStormUnavailable(f"{path}: no answer", code="timeout")
        await self._process.io()
        return CreatedCall(id=call_id)
