"""The one JSON error shape of the HTTP API: ``{"error": {"code": ..., "message": ...}}``.

aiohttp answers an unknown path (404) or method (405) in plain text. Rather than a middleware,
which every callback would pay for (two more coroutine frames around each handler), the
router gets routes that answer those in the JSON shape (:func:`add_json_fallbacks`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from bridge.errors import BridgeError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(error: BridgeError, *, status: int | None = None) -> web.Response:
    """The one JSON error shape of the API."""
    return web.json_response(error.to_json(), status=status or error.http_status)


def http_error_response(exc: web.HTTPException) -> web.Response:
    """aiohttp's own HTTP error (404, 405, ...) in the bridge's JSON error shape."""
    code = exc.reason.lower().replace(" ", "_")
    response = error_response(BridgeError(exc.text or exc.reason, code=code), status=exc.status)
    for name in (hdrs.ALLOW, hdrs.RETRY_AFTER):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


async def _not_found(request: web.Request) -> web.Response:
    return http_error_response(web.HTTPNotFound())


def _method_not_allowed(allowed: set[str]) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return http_error_response(web.HTTPMethodNotAllowed(request.method, allowed))

    return handler


def add_json_fallbacks(router: web.UrlDispatcher) -> None:
    """Answer unknown methods and paths in the JSON shape; call after every other route.

    Each resource without a catch-all method gets one answering 405 (with ``Allow``), and a
    last resource matching every path answers 404.
    """
    for resource in router.resources():
        methods = {route.method for route in resource}
        # Only path resources take routes (a sub-application's does not; the bridge has none).
        if isinstance(resource, web.Resource) and hdrs.METH_ANY not in methods:
            resource.add_route(hdrs.METH_ANY, _method_not_allowed(methods))
    router.add_route(hdrs.METH_ANY, "/{path:.*}", _not_found)
