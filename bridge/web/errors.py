"""The one JSON error shape of the HTTP API: ``{"error": {"code": ..., "message": ...}}``.

aiohttp answers an unknown path (404) or method (405) in plain text. Rather than a middleware,
which every callback would pay for (two more coroutine frames around each handler), the
router gets routes that answer those in the JSON shape (:func:`add_json_fallbacks`).

What aiohttp's HTTP parser reports reaches the answers too: :class:`BrokenBody` is how the
server tells a handler that its request's body broke half-way, :func:`detail` what a parser's
message can say to a stranger.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from bridge.errors import BridgeError, BrokenChunkedBody

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The code of a request whose chunked body broke half-way (the receiver's and the server's).
MALFORMED_CHUNKED_BODY = BrokenChunkedBody.code
#: The longest parser detail quoted in an answer or a log line.
MAX_DETAIL_CHARS = 200

_WRAPPED = re.compile(r"\d{3}, message")


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


class BrokenBody(RequestPayloadError):
    """The body stopped parsing half-way (a chunked body's framing broke).

    ``unread`` is what had arrived of it that no reader had taken yet: a stream raises its
    error before it hands over what it holds, so the bytes travel with the error.
    """

    def __init__(self, detail: str, unread: bytes = b"") -> None:
        super().__init__(detail)
        self.detail = detail
        self.unread = unread


def detail(exc: BaseException) -> str:
    """The first line of a parser's message, printable and bounded (it may quote what a
    stranger sent)."""
    if not isinstance(exc, HttpProcessingError) and isinstance(exc.__cause__, HttpProcessingError):
        # aiohttp hands a reader the parser's error wrapped in a RequestPayloadError.
        exc = exc.__cause__
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    lines = [line.strip().rstrip(":") for line in text.splitlines() if line.strip()]
    # llhttp's refusals of a request line say what was wrong on their second line, and the
    # text of a parser error wrapped for a reader begins with its status.
    if len(lines) > 1 and (lines[0] == "Bad status line" or _WRAPPED.fullmatch(lines[0])):
        del lines[0]
    first = lines[0] if lines and lines[0] else type(exc).__name__
    clean = first.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
    clean = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in clean)
    return clean if len(clean) <= MAX_DETAIL_CHARS else clean[:MAX_DETAIL_CHARS] + "..."
