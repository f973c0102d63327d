"""In-memory state of the FoneStorm sandbox: calls, registrations, faults, background tasks.

Kept apart from the HTTP handlers (:mod:`bridge.sandbox.app`) so tests that run the sandbox
in-process can read and steer it directly through :data:`bridge.sandbox.http.STATE_KEY`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp

from bridge.sandbox.models import (
    DeliveryResult,
    Direction,
    Faults,
    InjectedFault,
    NotifyKind,
    Outcome,
    number_key,
)
from bridge.sandbox.settings import SandboxSettings

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Registration:
    """A send_notify or receive_notify registration of one FoneNumber."""

    fonenumber: str
    url: str
    method: str
    username: str | None = None
    password: str | None = None
    registered_at: datetime = field(default_factory=_now)

    def to_json(self) -> dict[str, Any]:
        """JSON form; the password is masked."""
        return {
            "fonenumber": self.fonenumber,
            "url": self.url,
            "method": self.method,
            "url_username": self.username,
            "url_password": None if self.password is None else "********",
            "registered_at": self.registered_at.isoformat(),
        }


@dataclass
class Attempt:
    """One HTTP attempt to deliver a callback."""

    response_status: int | None
    error: str | None = None
    at: datetime = field(default_factory=_now)


@dataclass
class Delivery:
    """One callback (BEGIN or END) of a call and every attempt to deliver it."""

    status: str
    data: dict[str, str | int]
    method: str | None = None
    url: str | None = None
    result: DeliveryResult = "pending"
    attempts: list[Attempt] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``GET /_sandbox/calls``."""
        return {
            "status": self.status,
            "method": self.method,
            "url": self.url,
            "result": self.result,
            "response_status": self.attempts[-1].response_status if self.attempts else None,
            "attempts": len(self.attempts),
            "history": [
                {"at": a.at.isoformat(), "response_status": a.response_status, "error": a.error}
                for a in self.attempts
            ],
            "data": self.data,
        }


@dataclass
class CallRecord:
    """A call the sandbox created (outbound) or simulated (inbound)."""

    id: str
    direction: Direction
    fonenumber: str
    caller: str
    to: str
    outcome: Outcome
    tts: str | None = None
    idempotency_key: str | None = None
    created_at: datetime = field(default_factory=_now)
    callbacks: Literal["scheduled", "done", "cancelled", "error"] = "scheduled"
    deliveries: list[Delivery] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``GET /_sandbox/calls``."""
        return {
            "id": self.id,
            "direction": self.direction,
            "fonenumber": self.fonenumber,
            "from": self.caller,
            "to": self.to,
            "tts": self.tts,
            "idempotency_key": self.idempotency_key,
            "created_at": self.created_at.isoformat(),
            "outcome": self.outcome.to_json(),
            "callbacks": self.callbacks,
            "deliveries": [d.to_json() for d in self.deliveries],
        }


@dataclass
class ApiRequest:
    """One request to the ``/v2`` API and how it was answered."""

    method: str
    path: str
    status: int
    idempotency_key: str | None
    fault: str | None = None
    call_id: str | None = None
    at: datetime = field(default_factory=_now)

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``GET /_sandbox/requests``."""
        return {
            "at": self.at.isoformat(),
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "idempotency_key": self.idempotency_key,
            "fault": self.fault,
            "call_id": self.call_id,
        }


class SandboxState:
    """Everything the sandbox remembers; one instance per app."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.faults = self.baseline_faults()
        self.calls: dict[str, CallRecord] = {}
        self.registrations: dict[NotifyKind, dict[str, Registration]] = {
            "send_notify": {},
            "receive_notify": {},
        }
        self.requests: deque[ApiRequest] = deque(maxlen=10_000)
        #: Callback delivery: attempts per callback, first backoff (doubles), per-attempt timeout.
        self.delivery_attempts = 5
        self.delivery_backoff = 0.05
        self.delivery_timeout = 5.0
        #: Set when the app shuts down, so hanging requests answer instead of blocking shutdown.
        self.closing = asyncio.Event()
        #: Clear while ``faults.hold`` is set; ``held`` counts the requests waiting on it.
        self.released = asyncio.Event()
        self.released.set()
        self.held = 0
        self.session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Fault sampling is simulation, not security.
        self._rng = random.Random()  # noqa: S311

    def baseline_faults(self) -> Faults:
        """The faults configured in the settings (what DELETE and reset go back to)."""
        return Faults(latency=self.settings.latency, error_rate=self.settings.error_rate)

    def update_faults(self, update: dict[str, Any]) -> Faults:
        """Merge ``update`` into the current faults; raises ``ValidationError`` when invalid."""
        self.faults = Faults.model_validate({**self.faults.model_dump(), **update})
        if self.faults.hold:
            self.released.clear()
        else:
            self.released.set()
        log.info("sandbox faults now %s", self.faults.model_dump())
        return self.faults

    async def wait_released(self) -> None:
        """Hold an API request while ``faults.hold`` is set (shutdown releases it too)."""
        if self.released.is_set():
            return
        self.held += 1
        try:
            closing = asyncio.ensure_future(self.closing.wait())
            released = asyncio.ensure_future(self.released.wait())
            try:
                await asyncio.wait([closing, released], return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
                released.cancel()
        finally:
            self.held -= 1

    def take_fault(self) -> InjectedFault | None:
        """Consume the fault the next API request gets, if any."""
        f = self.faults
        if f.timeout_next:
            f.timeout_next -= 1
            return InjectedFault("hang", 504, seconds=f.timeout_seconds)
        if f.fail_next:
            f.fail_next -= 1
            return InjectedFault("fail", f.fail_status)
        if f.rate_limit_next:
            f.rate_limit_next -= 1
            retry_after = f.retry_after
            if isinstance(retry_after, int | float):
                retry_after = f"{retry_after:g}"
            return InjectedFault("rate_limit", 429, retry_after=retry_after)
        if f.error_rate and self._rng.random() < f.error_rate:
            return InjectedFault("fail", 500)
        return None

    def take_fail_after_create(self) -> bool:
        """Whether the call just created must be answered 500 anyway."""
        if self.faults.fail_after_create_next:
            self.faults.fail_after_create_next -= 1
            return True
        return False

    def take_break_body_after_create(self) -> bool:
        """Whether the 200 for the call just created must break off mid-body."""
        if self.faults.break_body_after_create_next:
            self.faults.break_body_after_create_next -= 1
            return True
        return False

    def registration(self, kind: NotifyKind, fonenumber: str) -> Registration | None:
        """The current ``kind`` registration of ``fonenumber``."""
        return self.registrations[kind].get(number_key(fonenumber))

    def register(self, kind: NotifyKind, registration: Registration) -> None:
        """Store (or replace) a registration."""
        self.registrations[kind][number_key(registration.fonenumber)] = registration
        log.info(
            "sandbox %s for %s: %s %s",
            kind,
            registration.fonenumber,
            registration.method,
            registration.url,
        )

    @staticmethod
    def new_call_id() -> str:
        """A time-based UUID like FoneStorm's, with a random node instead of our MAC."""
        return str(uuid.uuid1(node=random.getrandbits(48) | 1 << 40))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in a task that app cleanup and reset cancel.

        In a fresh context: FoneStorm's callbacks do not carry the trace of the create-call
        request that caused them, so neither do the sandbox's.
        """
        task = asyncio.create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_tasks(self) -> None:
        """Cancel every background task and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        """Forget calls, registrations, requests; faults back to the settings."""
        await self.cancel_tasks()
        self.calls.clear()
        for registrations in self.registrations.values():
            registrations.clear()
        self.requests.clear()
        self.faults = self.baseline_faults()
        self.released.set()
        log.info("sandbox reset")
