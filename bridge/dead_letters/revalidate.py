"""A dead-lettered callback through today's validation: the receiver's steps, from the record.

:class:`~bridge.contracts.dead_letters.HttpRequestRecord` keeps what the receiver looked at
(method, raw query, every line of the content type and encoding headers, the body
losslessly), so the same checks run in the same order as ``CallbackReceiver._data`` in
:mod:`bridge.ingest.receiver`: GET reads the query; POST refuses a compressed or incomplete
body and decodes the body by its content type. Pure: no I/O, tested as a table.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp.helpers import parse_content_type

from bridge.contracts.dead_letters import HeaderLine, HttpRequestRecord
from bridge.errors import (
    BodyTimeout,
    BrokenChunkedBody,
    CallbackError,
    ExpectationFailed,
    MalformedCallback,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from bridge.ingest import parsing

#: The receiver keeps at most this many characters of a query (then adds "…"); a longer one
#: in a dead letter was cut and is not the query FoneStorm sent.
MAX_QUERY_CHARS = 16 * 1024


def body_bytes(request: HttpRequestRecord) -> bytes:
    """The body as received (the record keeps it as text or base64)."""
    if request.body_encoding == "utf-8":
        return request.body.encode("utf-8")
    try:
        return base64.b64decode(request.body, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedCallback("the dead letter's base64 body does not decode") from None


def header_values(request: HttpRequestRecord, name: str) -> list[str]:
    """Every line of the kept header ``name`` (in any case) in the order it came, each as the
    receiver read it; from ``headers`` (one entry per spelling, its lines joined) in dead
    letters that predate ``header_lines``."""
    wanted = name.lower()
    if request.header_lines is not None:
        return [line_text(line) for line in request.header_lines if line.name.lower() == wanted]
    return [value for key, value in request.headers.items() if key.lower() == wanted]


def line_text(line: HeaderLine) -> str:
    """A header line's value as aiohttp hands it to the receiver (bytes that are not UTF-8 as
    surrogates). A base64 value cut when it was dead-lettered no longer decodes: it is read as
    kept, its "…" included, so no check takes it for a value it accepts."""
    if line.value is None:
        return ""
    if line.value_encoding == "utf-8":
        return line.value
    try:
        return base64.b64decode(line.value, validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return line.value


def _first(values: list[str]) -> str:
    return values[0] if values else ""


def callback_data(
    request: HttpRequestRecord, *, reason_code: str, max_body_bytes: int
) -> parsing.CallbackData:
    """The callback's data if today's receiver would accept it; else the :class:`CallbackError`
    it would answer with.

    ``reason_code`` is the dead letter's: a body that stalled (``request_timeout``), whose
    chunked framing broke, or that was not read for its ``Expect`` (``expectation_failed``)
    was refused before anything was decoded, and an incomplete body cannot be decoded now
    either.
    """
    if request.body_truncated and reason_code == BodyTimeout.code:
        raise BodyTimeout("the body did not arrive whole (it stalled), so it cannot be replayed")
    if request.body_truncated and reason_code == BrokenChunkedBody.code:
        raise BrokenChunkedBody(
            "the body did not arrive whole (its chunked framing broke), so it cannot be replayed"
        )
    if request.body_truncated and reason_code == ExpectationFailed.code:
        raise ExpectationFailed(
            "the body was not read whole (its Expect was refused before it was), so it "
            "cannot be replayed"
        )
    if request.method == "GET":
        if len(request.query) > MAX_QUERY_CHARS:
            raise MalformedCallback(
                "the query string was cut when it was dead-lettered, so it cannot be replayed"
            )
        return parsing.validate(parsing.parse_query(request.query))
    if request.method != "POST":
        raise CallbackError(
            f"method {request.method} is not allowed; use GET or POST", code="method_not_allowed"
        )
    # As the receiver reads them: every Content-Encoding line as one list, the first line of
    # the others (aiohttp refuses a second Transfer-Encoding or Content-Type line).
    encoding = ", ".join(header_values(request, "Content-Encoding")).strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed",
            code="unsupported_content_encoding",
        )
    transfer = _first(header_values(request, "Transfer-Encoding")).strip().lower()
    if transfer not in ("", "chunked"):
        raise UnsupportedMediaType(
            f"Transfer-Encoding {transfer!r} is not accepted; send the body uncompressed",
            code="unsupported_content_encoding",
        )
    body = body_bytes(request)
    if request.body_truncated or len(body) > max_body_bytes:
        raise PayloadTooLarge(
            f"body is larger than the limit of {max_body_bytes} bytes"
            + (" (it was cut when it was dead-lettered)" if request.body_truncated else "")
        )
    # aiohttp's own parser, as behind request.content_type and request.charset: the same header
    # gives the same answer (no header at all reads as application/octet-stream).
    content_type, params = parse_content_type(_first(header_values(request, "Content-Type")))
    return parsing.validate_post(content_type, params.get("charset"), body)
