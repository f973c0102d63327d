"""What the sandbox's handlers share: its state key, its one error shape, reading bodies."""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bridge.sandbox.delivery import run_call
from bridge.sandbox.state import CallRecord, SandboxState

log = logging.getLogger("bridge.sandbox.app")

STATE_KEY: web.AppKey[SandboxState] = web.AppKey("fonestorm_sandbox_state", SandboxState)

_M = TypeVar("_M", bound=BaseModel)


class SandboxError(Exception):
    """An error answer; the middleware renders it as ``{"error": {"code", "message"}}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The sandbox's one error shape."""
    body = {"error": {"code": code, "message": message}}
    return web.json_response(body, status=status, headers=headers)


async def read_object(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body, or 400."""
    try:
        data = json.loads(await request.read())
    except ValueError:
        raise SandboxError(400, "malformed_body", "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise SandboxError(400, "malformed_body", "body must be a JSON object")
    return data


async def parse(request: web.Request, model: type[_M]) -> _M:
    """Read a JSON object body into ``model``: 400 when not JSON, 422 when fields are wrong."""
    data = await read_object(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SandboxError(422, "invalid_fields", describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """Each field error as ``path: message``, joined."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )


def start_call(state: SandboxState, call: CallRecord) -> None:
    """Keep ``call`` and deliver its callbacks in the background."""
    state.calls[call.id] = call
    state.spawn(run_call(state, call))
    log.info(
        "sandbox created %s call %s from %s to %s (disposition %s, idempotency key %s)",
        call.direction,
        call.id,
        call.caller,
        call.to,
        call.outcome.disposition,
        call.idempotency_key,
    )
