"""Callback delivery of the FoneStorm sandbox: a call's BEGIN and END, as FoneStorm sends them."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from urllib.parse import quote

import aiohttp
from yarl import URL

from bridge.sandbox.models import NotifyKind
from bridge.sandbox.state import Attempt, CallRecord, Delivery, Registration, SandboxState

log = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"\{\{(\w+)\}\}")
# Characters that may travel unescaped in a request target (RFC 3986), plus the braces of
# tokens left unreplaced, which FoneStorm sends as they are.
_RAW_SAFE_RE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%{}]*")


def callback_data(call: CallRecord, status: str, account_code: str) -> dict[str, str | int]:
    """The callback fields of ``call`` for ``status`` (``BEGIN`` or ``END``)."""
    data: dict[str, str | int] = {
        "uid": call.id,
        "account_code": account_code,
        "direction": call.direction,
        "status": status,
        "from": call.caller,
        "to": call.to,
        "type": "VOICE",
    }
    if status == "END":
        data["disposition"] = call.outcome.disposition
        data["billable_seconds"] = call.outcome.billable_seconds
    return data


def basic_auth(username: str, password: str) -> str:
    """``Authorization`` header value for HTTP basic auth (RFC 7617, UTF-8)."""
    return aiohttp.encode_basic_auth(username, password)


def render_get_url(template: str, data: Mapping[str, str | int]) -> str:
    """Replace ``{{field}}`` tokens with URL-encoded values; tokens without a value stay as is."""

    def replace(match: re.Match[str]) -> str:
        value = data.get(match.group(1))
        return match.group(0) if value is None else quote(str(value), safe="")

    return _TOKEN_RE.sub(replace, template)


def _wire_url(url: str) -> URL:
    # Sent byte for byte when that is valid HTTP, so unreplaced tokens arrive with their braces.
    return URL(url, encoded=True) if _RAW_SAFE_RE.fullmatch(url) else URL(url)


async def run_call(state: SandboxState, call: CallRecord) -> None:
    """Deliver BEGIN after ``ring_delay``, then END after ``call_duration`` more."""
    kind: NotifyKind = "send_notify" if call.direction == "OUTBOUND" else "receive_notify"
    try:
        await asyncio.sleep(state.settings.ring_delay)
        await _deliver(state, call, kind, "BEGIN")
        await asyncio.sleep(state.settings.call_duration)
        if call.outcome.end_delivered:
            await _deliver(state, call, kind, "END")
        else:
            data = callback_data(call, "END", state.settings.account_code)
            call.deliveries.append(Delivery(status="END", data=data, result="dropped"))
            log.info("sandbox call %s: END callback dropped on purpose", call.id)
        call.callbacks = "done"
    except asyncio.CancelledError:
        call.callbacks = "cancelled"
        raise
    except Exception:
        call.callbacks = "error"
        log.exception("sandbox call %s: callback delivery crashed", call.id)
    finally:
        call.finished.set()


async def _deliver(state: SandboxState, call: CallRecord, kind: NotifyKind, status: str) -> None:
    data = callback_data(call, status, state.settings.account_code)
    delivery = Delivery(status=status, data=data)
    call.deliveries.append(delivery)
    # Looked up at delivery time, like FoneStorm: a registration made while ringing applies.
    registration = state.registration(kind, call.fonenumber)
    if registration is None:
        delivery.result = "no_registration"
        log.info(
            "sandbox call %s: no %s registration for %s, %s not delivered",
            call.id,
            kind,
            call.fonenumber,
            status,
        )
        return
    delivery.method = registration.method
    delivery.url = (
        render_get_url(registration.url, data) if registration.method == "GET" else registration.url
    )
    for attempt in range(1, state.delivery_attempts + 1):
        response_status, error = await _send(state, registration, delivery.url, data)
        delivery.attempts.append(Attempt(response_status, error))
        log.info(
            "sandbox call %s: %s %s %s attempt %d -> %s",
            call.id,
            status,
            registration.method,
            delivery.url,
            attempt,
            response_status if error is None else error,
        )
        if response_status is not None and response_status < 500:
            # 4xx is the receiver's final word; only 5xx and transport errors are retried.
            delivery.result = "delivered" if 200 <= response_status < 300 else "rejected"
            return
        if attempt < state.delivery_attempts:
            await asyncio.sleep(state.delivery_backoff * 2 ** (attempt - 1))
    delivery.result = "failed"


async def _send(
    state: SandboxState, registration: Registration, url: str, data: dict[str, str | int]
) -> tuple[int | None, str | None]:
    """One HTTP attempt: the response status, or ``None`` and what went wrong."""
    if state.session is None:
        raise RuntimeError("sandbox callback session not started")
    headers: dict[str, str] = {}
    if registration.username is not None or registration.password is not None:
        headers["Authorization"] = basic_auth(
            registration.username or "", registration.password or ""
        )
    timeout = aiohttp.ClientTimeout(total=state.delivery_timeout)
    try:
        if registration.method == "GET":
            request = state.session.get(
                _wire_url(url), headers=headers, timeout=timeout, allow_redirects=False
            )
        elif registration.method == "POST":
            form = {key: str(value) for key, value in data.items()}
            request = state.session.post(
                url, data=form, headers=headers, timeout=timeout, allow_redirects=False
            )
        else:
            request = state.session.post(
                url, json=data, headers=headers, timeout=timeout, allow_redirects=False
            )
        async with request as resp:
            await resp.read()
            return resp.status, None
    except (aiohttp.ClientError, TimeoutError) as exc:
        return None, (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
