"""What the HTTP server answers to requests it refuses before any handler runs (pure).

aiohttp's parser refuses some requests (a broken request line, a header too long, a broken
chunked body, ...) and answers them itself in plain text; others it hands to the app although
the app cannot serve them (``CONNECT``, ``OPTIONS *``, HTTP/2.0 in text, an ``Expect`` it would
answer with a plain-text 417). :func:`classify` and :func:`screen` decide the bridge's answer to
each, in the JSON error shape with a precise code; :mod:`bridge.web.connection` sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)
from aiohttp.http_parser import RawRequestMessage
from aiohttp.http_writer import HttpVersion
from aiohttp.streams import StreamReader
from yarl import URL

from bridge.errors import CallbackError, ExpectationFailed
from bridge.web.errors import MALFORMED_CHUNKED_BODY, MAX_DETAIL_CHARS, detail

HTTP_VERSION_NOT_SUPPORTED = "http_version_not_supported"


@dataclass(frozen=True, slots=True)
class Refusal:
    """One answer in the JSON error shape: status, code, message (and ``Allow`` for a 405).

    ``letter``: the error a callback refused so is dead-lettered for, the request being a
    whole one (the parser took it); ``None``: nothing is kept.
    """

    status: int
    code: str
    message: str
    allow: str | None = None
    letter: type[CallbackError] | None = None


class RefusedRequest(HttpProcessingError):
    """A request the parser accepted but :func:`screen` refused: its answer travels with it,
    and ``held``, what the server keeps of it for a dead letter (its ``letter``)."""

    def __init__(
        self, refusal: Refusal, held: tuple[RawRequestMessage, StreamReader] | None = None
    ) -> None:
        super().__init__(code=refusal.status, message=refusal.message)
        self.refusal = refusal
        self.held = held


def _is(kind: type[Exception], starts: str = "") -> Callable[[Exception, str], bool]:
    return lambda exc, why: isinstance(exc, kind) and why.startswith(starts)


def _says(*words: str) -> Callable[[Exception, str], bool]:
    return lambda exc, why: any(word in why for word in words)


#: In order, the first that matches: what the exception is, what its first line says.
_RULES: tuple[tuple[Callable[[Exception, str], bool], int, str, str], ...] = (
    (_is(LineTooLong), 400, "line_too_long", "a request line or header is too long ({})"),
    (
        _is(HttpProcessingError, "Too many headers"),
        431,
        "too_many_headers",
        "too many headers ({})",
    ),
    (
        _is(HttpProcessingError, "Pause on PRI/Upgrade"),
        505,
        HTTP_VERSION_NOT_SUPPORTED,
        "HTTP/2 is not served here: send HTTP/1.1",
    ),
    (
        _is(BadHttpMethod, "Received HTTPS traffic"),
        400,
        "https_on_http_port",
        "this port speaks HTTP, not HTTPS",
    ),
    (_is(BadHttpMethod), 400, "invalid_method", "the request method is not valid ({})"),
    (
        _is(BadStatusLine, "Invalid HTTP version"),
        505,
        HTTP_VERSION_NOT_SUPPORTED,
        "only HTTP/1.0 and HTTP/1.1 are served here ({})",
    ),
    (_is(BadStatusLine), 400, "bad_request_line", "the request line is not valid ({})"),
    (
        _is(InvalidURLError),
        400,
        "invalid_request_target",
        "the request target is not valid ({})",
    ),
    (
        lambda exc, why: isinstance(exc, TransferEncodingError) or "chunk" in why.lower(),
        400,
        MALFORMED_CHUNKED_BODY,
        "the chunked body is malformed ({})",
    ),
    # How long the body is, told twice or unreadably: the stuff of request smuggling.
    (
        _says("Content-Length", "Transfer-Encoding"),
        400,
        "invalid_body_framing",
        "Content-Length or Transfer-Encoding is not valid ({})",
    ),
    (_is(InvalidHeader), 400, "invalid_header", "a header is not valid ({})"),
    (
        _is(HttpProcessingError, "Invalid header"),
        400,
        "invalid_header",
        "a header is not valid ({})",
    ),
    (
        _is(HttpProcessingError, "Missing 'Host'"),
        400,
        "missing_host",
        "an HTTP/1.1 request needs a Host header",
    ),
    (
        _is(HttpProcessingError, "Duplicate '"),
        400,
        "duplicate_header",
        "a header that may appear once is repeated ({})",
    ),
)


def classify(exc: HttpProcessingError) -> Refusal:
    """The answer to a request aiohttp's parser (C or pure Python) refused with ``exc``."""
    if isinstance(exc, RefusedRequest):
        return exc.refusal
    why = detail(exc)
    for matches, status, code, message in _RULES:
        if matches(exc, why):
            return Refusal(status, code, message.format(why))
    return Refusal(400, "malformed_request", f"the request is malformed ({why})")


def for_status(status: int) -> Refusal:
    """The answer to an error aiohttp met outside the parser (a handler's 500, a 504)."""
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        return Refusal(status, "internal_error", "the server failed on this request")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return Refusal(status, phrase.lower().replace(" ", "_").replace("-", "_"), phrase)


def screen(method: str, target: str, version: HttpVersion, expect: str | None) -> Refusal | None:
    """The answer to a request the parser accepted but no handler can serve; ``None`` for the
    rest (``target`` as sent, ``expect`` the ``Expect`` header or ``None``)."""
    if version.major != 1:
        return Refusal(
            505,
            HTTP_VERSION_NOT_SUPPORTED,
            f"HTTP/{version.major}.{version.minor} is not served here: send HTTP/1.1",
        )
    if method == "CONNECT":
        # Its target is a host and port, no resource here: an empty Allow says none allows it.
        return Refusal(
            405, "connect_not_supported", "CONNECT is not supported: this is not a proxy", ""
        )
    if target == "*":
        # The parser lets an asterisk through for OPTIONS only.
        return Refusal(
            405, "options_not_supported", "OPTIONS is not supported, for * or any path", ""
        )
    # What aiohttp's own expect handler accepts; it answers anything else with 417 in text.
    if expect is not None and version.minor >= 1 and expect.lower() != "100-continue":
        return Refusal(
            ExpectationFailed.http_status,
            ExpectationFailed.code,
            f"Expect {expect[:MAX_DETAIL_CHARS]!r} is not supported",
            letter=ExpectationFailed,
        )
    return None


def with_root_path(url: URL) -> URL | None:
    """An absolute-form target without a path (``http://host``) as the one for ``/``.

    aiohttp routes an absolute-form target by its path, and reads none where HTTP reads ``/``
    (RFC 9112, 3.2.1); ``None`` when the target has a path.
    """
    if not url.is_absolute() or url.relative().raw_path:
        return None
    return url.with_path("/", keep_query=True)
