"""The sandbox's control endpoints (``/_sandbox/...``, no token): what it recorded, its
faults, simulated inbound calls and reset."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from bridge.sandbox.http import STATE_KEY, SandboxError, describe, parse, read_object, start_call
from bridge.sandbox.models import DEFAULT_OUTCOME, InboundBody, Outcome
from bridge.sandbox.state import CallRecord


async def _inbound(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await parse(request, InboundBody)
    disposition = body.disposition or "ANSWERED"
    seconds = body.billable_seconds
    if seconds is None:
        seconds = DEFAULT_OUTCOME.billable_seconds if disposition == "ANSWERED" else 0
    call = CallRecord(
        id=state.new_call_id(),
        direction="INBOUND",
        fonenumber=body.to,
        caller=body.caller,
        to=body.to,
        outcome=Outcome(disposition, seconds, "simulated inbound call"),
    )
    start_call(state, call)
    return web.json_response({"call": {"id": call.id}})


async def _list_calls(request: web.Request) -> web.Response:
    filters = {
        k: request.query[k] for k in ("idempotency_key", "to", "direction") if k in request.query
    }
    every = (call.to_json() for call in request.app[STATE_KEY].calls.values())
    calls = [c for c in every if all(str(c[k]) == v for k, v in filters.items())]
    return web.json_response(calls)


async def _get_call(request: web.Request) -> web.Response:
    call = request.app[STATE_KEY].calls.get(request.match_info["call_id"])
    if call is None:
        raise SandboxError(404, "not_found", "no such call")
    return web.json_response(call.to_json())


async def _registrations(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(
        {
            kind: {r.fonenumber: r.to_json() for r in regs.values()}
            for kind, regs in state.registrations.items()
        }
    )


async def _requests(request: web.Request) -> web.Response:
    return web.json_response([r.to_json() for r in request.app[STATE_KEY].requests])


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].faults.model_dump())


async def _set_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    update = await read_object(request)
    try:
        faults = state.update_faults(update)
    except ValidationError as exc:
        raise SandboxError(422, "invalid_fields", describe(exc)) from None
    return web.json_response(faults.model_dump())


async def _held(request: web.Request) -> web.Response:
    return web.json_response({"held": request.app[STATE_KEY].held})


async def _clear_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.faults = state.baseline_faults()
    state.released.set()
    return web.json_response(state.faults.model_dump())


async def _reset(request: web.Request) -> web.Response:
    await request.app[STATE_KEY].reset()
    return web.json_response({"status": "reset"})


def add_control_routes(app: web.Application) -> None:
    """Route the ``/_sandbox/...`` endpoints of ``app``."""
    app.router.add_get("/_sandbox/calls", _list_calls)
    app.router.add_get("/_sandbox/calls/{call_id}", _get_call)
    app.router.add_get("/_sandbox/registrations", _registrations)
    app.router.add_get("/_sandbox/requests", _requests)
    app.router.add_get("/_sandbox/faults", _get_faults)
    app.router.add_post("/_sandbox/faults", _set_faults)
    app.router.add_delete("/_sandbox/faults", _clear_faults)
    app.router.add_get("/_sandbox/held", _held)
    app.router.add_post("/_sandbox/inbound", _inbound)
    app.router.add_post("/_sandbox/reset", _reset)
