"""The one JSON error shape of the HTTP API: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bridge.errors import BridgeError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(error: BridgeError, *, status: int | None = None) -> web.Response:
    """The one JSON error shape of the API."""
    return web.json_response(error.to_json(), status=status or error.http_status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give aiohttp's own HTTP errors (404, 405, ...) the bridge's JSON error shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        error = BridgeError(exc.text or exc.reason, code=code)
        response = error_response(error, status=exc.status)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
