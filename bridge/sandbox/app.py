"""FoneStorm sandbox: a look-alike of the FoneStorm calls API for local runs and tests.

``POST /v2/calls``, ``/v2/calls/send_notify`` and ``/v2/calls/receive_notify`` behave as the
API documentation says (``token`` header, JSON bodies, the documented response shapes). After a
call is created, a background task delivers the ``BEGIN`` callback after ``ring_delay`` and the
``END`` callback ``call_duration`` later to the send_notify registration of the caller
FoneNumber, with the registered method (``GET`` token replacement, ``POST`` form, ``JSON``) and
basic auth. Deliveries answered 5xx or failing to connect are retried with a short backoff;
4xx is final. Every attempt is recorded.

How a call ends depends on the last four digits of ``to`` (:data:`OUTCOME_TABLE`):

| `to` ends in | Result | END `disposition` | `billable_seconds` |
|---|---|---|---|
| `0001` | not answered | `NO_ANSWER` | 0 |
| `0002` | busy | `BUSY` | 0 |
| `0003` | rejected by the callee | `REJECTED` | 0 |
| `0004` | cancelled before answer | `CANCEL` | 0 |
| `0005` | failed in the network | `FAILED:503` | 0 |
| `0006` | answered, 125 billable seconds | `ANSWERED` | 125 |
| `0007` | BEGIN only: the END callback is lost | (none) | (none) |
| `0008` | create-call answered 403 `forbidden_destination` | (no call) | (no call) |
| `0009` | create-call answered 422 `invalid_destination` | (no call) | (no call) |
| (other) | answered, 30 billable seconds | `ANSWERED` | 30 |

Admin endpoints (no token): ``GET /healthz``; ``GET /_sandbox/calls`` (filters
``?idempotency_key=&to=&direction=``) and ``GET /_sandbox/calls/{id}``;
``GET /_sandbox/registrations``; ``GET /_sandbox/requests`` (every ``/v2`` request and its
status); ``GET|POST|DELETE /_sandbox/faults``; ``GET /_sandbox/held`` (requests held by the
``hold`` fault); ``POST /_sandbox/inbound`` (simulate an inbound
call); ``POST /_sandbox/reset``. Every error is ``{"error": {"code", "message"}}``.

Faults apply to ``/v2`` requests before the token is checked, in this order: ``timeout_next``
(hang ``timeout_seconds``, then 504), ``fail_next`` (``fail_status``), ``rate_limit_next`` (429
with ``Retry-After``), ``error_rate`` (500), all without creating anything;
``fail_after_create_next`` answers 500 *after* creating the call, and
``break_body_after_create_next`` answers 200 after creating it but closes the connection halfway
through the body. ``latency`` delays every answer.
``hold`` holds every request (before the faults above) until it is set false again, so a test can
stop a request at a known point; ``unauthorized`` answers 401 to every request while it is set.
A 403 (``0008``) refuses one request for its own reason (a destination the account may not
call) and accepts the token; a 401 refuses the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bridge.sandbox.control import add_control_routes
from bridge.sandbox.http import STATE_KEY, SandboxError, error_response, parse, start_call
from bridge.sandbox.models import (
    DEFAULT_OUTCOME,
    OUTCOME_TABLE,
    OUTCOMES_BY_SUFFIX,
    CreateCallBody,
    NotifyBody,
    NotifyKind,
    outcome_for,
)
from bridge.sandbox.settings import SandboxSettings
from bridge.sandbox.state import ApiRequest, CallRecord, Registration, SandboxState

__all__ = [
    "DEFAULT_OUTCOME",
    "OUTCOMES_BY_SUFFIX",
    "OUTCOME_TABLE",
    "STATE_KEY",
    "SandboxState",
    "create_sandbox_app",
    "run_sandbox",
]

log = logging.getLogger(__name__)

API_PREFIX = "/v2"
_FAULT_KEY: web.RequestKey[str] = web.RequestKey("sandbox_fault", str)
_CALL_ID_KEY: web.RequestKey[str] = web.RequestKey("sandbox_call_id", str)


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error as JSON and record each ``/v2`` request."""
    try:
        response = await handler(request)
    except SandboxError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        code = exc.reason.lower().replace(" ", "_")
        response = error_response(
            exc.status, code, f"{request.method} {request.path}: {exc.reason}", allow
        )
    except Exception:
        log.exception("sandbox: %s %s crashed", request.method, request.path)
        response = error_response(500, "internal_error", "sandbox bug, see its log")
    if request.path.startswith(API_PREFIX + "/"):
        request.app[STATE_KEY].requests.append(
            ApiRequest(
                method=request.method,
                path=request.path,
                status=response.status,
                idempotency_key=request.headers.get("Idempotency-Key"),
                fault=request.get(_FAULT_KEY),
                call_id=request.get(_CALL_ID_KEY),
            )
        )
    return response


async def _guard(request: web.Request) -> SandboxState:
    """Apply latency, injected faults and the token check to an API request."""
    state = request.app[STATE_KEY]
    # Receive the whole request before "processing" it, as a real server does: a client that
    # gives up during the latency does not undo a request FoneStorm already has.
    await request.read()
    if state.faults.latency:
        await asyncio.sleep(state.faults.latency)
    await state.wait_released()
    fault = state.take_fault()
    if fault is not None:
        request[_FAULT_KEY] = fault.kind
        if fault.kind == "hang":
            # Shutdown ends the hang early so the server does not wait out timeout_seconds.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(fault.seconds):
                    await state.closing.wait()
            raise SandboxError(504, "timeout", "sandbox: injected timeout")
        if fault.kind == "rate_limit":
            headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            raise SandboxError(429, "rate_limited", "sandbox: injected rate limit", headers)
        raise SandboxError(fault.status, "injected_fault", f"sandbox: injected {fault.status}")
    token = request.headers.get("token", "").encode()
    if state.faults.unauthorized:
        raise SandboxError(401, "unauthorized", "sandbox: token refused (unauthorized fault)")
    if not hmac.compare_digest(token, state.settings.token.get_secret_value().encode()):
        raise SandboxError(401, "unauthorized", "missing or invalid token")
    return state


async def _create_call(request: web.Request) -> web.StreamResponse:
    state = await _guard(request)
    body = await parse(request, CreateCallBody)
    outcome = outcome_for(body.to)
    if not outcome.accepted:
        status, code = outcome.refusal
        raise SandboxError(status, code, f"cannot call {body.to}")
    call = CallRecord(
        id=state.new_call_id(),
        direction="OUTBOUND",
        fonenumber=body.fonenumber,
        caller=body.fonenumber,
        to=body.to,
        outcome=outcome,
        tts=body.tts,
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    start_call(state, call)
    request[_CALL_ID_KEY] = call.id
    if state.take_fail_after_create():
        request[_FAULT_KEY] = "fail_after_create"
        raise SandboxError(500, "injected_fault", "sandbox: injected 500 after creating the call")
    if state.take_break_body_after_create():
        request[_FAULT_KEY] = "break_body_after_create"
        return await _broken_body(request, json.dumps({"call": {"id": call.id}}).encode())
    return web.json_response({"call": {"id": call.id}})


async def _broken_body(request: web.Request, body: bytes) -> web.StreamResponse:
    """200 with the whole body's Content-Length, then half of it and a closed connection."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return response


def _notify_handler(kind: NotifyKind) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        state = await _guard(request)
        body = await parse(request, NotifyBody)
        registration = Registration(
            fonenumber=body.fonenumber,
            url=body.url,
            method=body.method,
            username=body.url_username,
            password=body.url_password,
        )
        state.register(kind, registration)
        return web.json_response({"callback": {"url": body.url, "method": body.method}})

    return handler


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _callback_session(app: web.Application) -> AsyncIterator[None]:
    """The client session for deliveries; pending deliveries are cancelled on cleanup."""
    state = app[STATE_KEY]
    state.session = aiohttp.ClientSession()
    try:
        yield
    finally:
        await state.cancel_tasks()
        await state.session.close()
        state.session = None


async def _release_hangs(app: web.Application) -> None:
    app[STATE_KEY].closing.set()


def create_sandbox_app(
    settings: SandboxSettings, *, middlewares: Sequence[Middleware] = ()
) -> web.Application:
    """The sandbox as an aiohttp application; its state is ``app[STATE_KEY]``.

    ``middlewares`` (tracing, say) come first: whoever builds the sandbox brings them.
    """
    app = web.Application(middlewares=[*middlewares, _middleware])
    app[STATE_KEY] = SandboxState(settings)
    app.cleanup_ctx.append(_callback_session)
    app.on_shutdown.append(_release_hangs)
    app.router.add_post(f"{API_PREFIX}/calls", _create_call)
    app.router.add_post(f"{API_PREFIX}/calls/send_notify", _notify_handler("send_notify"))
    app.router.add_post(f"{API_PREFIX}/calls/receive_notify", _notify_handler("receive_notify"))
    app.router.add_get("/healthz", _healthz)
    add_control_routes(app)
    return app


async def run_sandbox(settings: SandboxSettings, *, middlewares: Sequence[Middleware] = ()) -> None:
    """Serve :func:`create_sandbox_app` on ``settings.host:settings.port`` until cancelled."""
    app = create_sandbox_app(settings, middlewares=middlewares)
    runner = web.AppRunner(app, shutdown_timeout=5.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        log.info(
            "FoneStorm sandbox listening on %s (API base URL: .../v2)",
            ", ".join(f"http://{addr[0]}:{addr[1]}" for addr in runner.addresses),
        )
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        log.info("FoneStorm sandbox stopped")
