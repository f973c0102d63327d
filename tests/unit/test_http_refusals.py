"""The answers to requests refused before any handler (bridge.web.refused), as tables.

The parser's errors come from aiohttp's own parsers, its C one (which the image runs) and its
pure-Python one (``AIOHTTP_NO_EXTENSIONS``), fed the raw bytes: an aiohttp upgrade that words
its errors differently shows up here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.http_exceptions import BadStatusLine, HttpProcessingError, TransferEncodingError
from aiohttp.http_parser import HttpRequestParserC, HttpRequestParserPy
from aiohttp.http_writer import HttpVersion
from aiohttp.web_protocol import RequestPayloadError
from yarl import URL

from bridge.errors import ExpectationFailed
from bridge.web.errors import MAX_DETAIL_CHARS, detail
from bridge.web.refused import (
    Refusal,
    RefusedRequest,
    classify,
    for_status,
    screen,
    with_root_path,
)

CHUNKED = b"POST /callbacks/calls HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n"
OK = None  # the parser hands the request over
METHOD = (400, "invalid_method")
LINE = (400, "bad_request_line")
VERSION = (505, "http_version_not_supported")
TOO_LONG = (400, "line_too_long")
TARGET = (400, "invalid_request_target")
HEADER = (400, "invalid_header")
FRAMING = (400, "invalid_body_framing")
CHUNKS = (400, "malformed_chunked_body")
TLS = (400, "https_on_http_port")

#: Raw request -> (status, code) for the C parser, and for the pure-Python one.
PARSED: list[tuple[bytes, Any, Any]] = [
    (b"GARBAGE\r\n\r\n", METHOD, METHOD),
    (b"G@T / HTTP/1.1\r\nHost: b\r\n\r\n", METHOD, METHOD),
    (b"BREW / HTTP/1.1\r\nHost: b\r\n\r\n", METHOD, OK),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", TLS, TLS),
    (b"GET / HTTX/1.1\r\nHost: b\r\n\r\n", LINE, LINE),
    (b"GET / HTTP/10.0\r\nHost: b\r\n\r\n", LINE, LINE),
    (b"GET / HTTP/1.7\r\nHost: b\r\n\r\n", VERSION, OK),
    (b"GET / HTTP/2.0\r\nHost: b\r\n\r\n", OK, OK),  # screen() answers it
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", VERSION, TARGET),
    (b"GET /" + b"p" * 9000 + b" HTTP/1.1\r\nHost: b\r\n\r\n", TOO_LONG, TOO_LONG),
    (b"GET / HTTP/1.1\r\nHost: b\r\nX: " + b"h" * 9000 + b"\r\n\r\n", TOO_LONG, TOO_LONG),
    (
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: x\r\n" % n for n in range(200)) + b"\r\n",
        (431, "too_many_headers"),
        (431, "too_many_headers"),
    ),
    (b"GET * HTTP/1.1\r\nHost: b\r\n\r\n", TARGET, TARGET),
    (b"GET b:443 HTTP/1.1\r\nHost: b\r\n\r\n", TARGET, TARGET),
    (b"GET /a\x01b HTTP/1.1\r\nHost: b\r\n\r\n", TARGET, TARGET),
    (b"OPTIONS * HTTP/1.1\r\nHost: b\r\n\r\n", OK, OK),  # screen() answers it
    (b"CONNECT b:443 HTTP/1.1\r\nHost: b\r\n\r\n", OK, OK),  # screen() answers it
    (b"GET / HTTP/1.1\r\nHost: b\r\nX-Bad\x01: y\r\n\r\n", HEADER, HEADER),
    (b"GET / HTTP/1.1\r\nHost: b\r\nX: a\x00b\r\n\r\n", HEADER, HEADER),
    (b"GET / HTTP/1.1\r\n\r\n", (400, "missing_host"), (400, "missing_host")),
    (
        b"GET / HTTP/1.1\r\nHost: b\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n",
        (400, "duplicate_header"),
        (400, "duplicate_header"),
    ),
    (
        b"POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        FRAMING,
        FRAMING,
    ),
    (b"POST / HTTP/1.1\r\nHost: b\r\nContent-Length: x\r\n\r\n{}", FRAMING, FRAMING),
    (CHUNKED + b"5\r\n{}{}{\r\nzz\r\n", CHUNKS, CHUNKS),
    (CHUNKED + b"2\r\n{}{}\r\n0\r\n\r\n", CHUNKS, CHUNKS),
    (CHUNKED + b"2\n{}\r\n0\r\n\r\n", CHUNKS, CHUNKS),
    (CHUNKED + b"2;a\nb\r\n{}\r\n0\r\n\r\n", CHUNKS, CHUNKS),
]  # fmt: skip


class _Protocol:
    """What a parser asks of its connection: flow control only."""

    transport = None
    _reading_paused = False

    def pause_reading(self, **_: object) -> None:
        pass

    def resume_reading(self, **_: object) -> None:
        pass


@pytest.mark.parametrize(("raw", "in_c", "in_python"), PARSED)
async def test_what_each_parser_refuses_gets_its_precise_answer(
    raw: bytes, in_c: Any, in_python: Any
) -> None:
    for parser_class, expected in ((HttpRequestParserC, in_c), (HttpRequestParserPy, in_python)):
        parser = parser_class(
            _Protocol(), asyncio.get_running_loop(), 2**16, payload_exception=RequestPayloadError
        )
        if expected is OK:
            parser.feed_data(raw)
            continue
        with pytest.raises(HttpProcessingError) as refused:
            parser.feed_data(raw)
        refusal = classify(refused.value)
        assert (refusal.status, refusal.code) == expected, (parser_class, detail(refused.value))
        assert refusal.message


@pytest.mark.parametrize(
    ("method", "target", "version", "expect", "answer"),
    [
        ("POST", "/callbacks/calls", (1, 1), None, None),
        ("GET", "/healthz", (1, 0), None, None),
        ("GET", "http://b/callbacks/calls", (1, 1), None, None),
        ("POST", "/callbacks/calls", (1, 1), "100-continue", None),
        ("POST", "/callbacks/calls", (1, 1), "100-Continue", None),
        ("POST", "/callbacks/calls", (1, 0), "tea", None),  # HTTP/1.0 ignores Expect
        ("POST", "/callbacks/calls", (1, 1), "tea", (417, "expectation_failed")),
        ("GET", "/healthz", (2, 0), None, (505, "http_version_not_supported")),
        ("GET", "/healthz", (0, 9), None, (505, "http_version_not_supported")),
        ("CONNECT", "b:443", (1, 1), None, (405, "connect_not_supported")),
        ("CONNECT", "/callbacks/calls", (1, 1), None, (405, "connect_not_supported")),
        ("OPTIONS", "*", (1, 1), None, (405, "options_not_supported")),
        ("OPTIONS", "/callbacks/calls", (1, 1), None, None),  # the app's to answer
    ],
)
def test_what_no_handler_can_serve_is_screened_out(
    method: str, target: str, version: tuple[int, int], expect: str | None, answer: Any
) -> None:
    refusal = screen(method, target, HttpVersion(*version), expect)
    assert (refusal and (refusal.status, refusal.code)) == answer
    if refusal is not None:
        # Only a request refused for its Expect is a whole one a callback could be.
        assert refusal.letter is (ExpectationFailed if refusal.status == 417 else None)
    if refusal is not None and refusal.status == 405:
        assert refusal.allow == ""  # no method is allowed on such a target


@pytest.mark.parametrize(
    ("url", "rerouted"),
    [
        ("http://b", "http://b/"),
        ("http://b?a=1", "http://b/?a=1"),
        ("http://b/", None),
        ("http://b/callbacks/calls", None),
        ("/callbacks/calls", None),
        ("*", None),
    ],
)
def test_an_absolute_form_target_without_a_path_is_the_root(url: str, rerouted: str | None) -> None:
    root = with_root_path(URL(url, encoded=True))
    assert (root and str(root)) == rerouted
    if root is not None:
        assert root.relative().path == "/"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (BadStatusLine(error="Bad status line:\n  Invalid HTTP version:"), "Invalid HTTP version"),
        (TransferEncodingError("Invalid chunk size:\n\n  b'zz'\n  ^"), "Invalid chunk size"),
        (RequestPayloadError("400, message:\n  Chunk size mismatch"), "Chunk size mismatch"),
        (HttpProcessingError(message="bad \x01 byte \udcff"), "bad \\x01 byte \\xff"),
        (HttpProcessingError(message="x" * 1000), "x" * MAX_DETAIL_CHARS + "..."),
        (HttpProcessingError(message=""), "HttpProcessingError"),
    ],
)  # fmt: skip
def test_a_parser_detail_is_one_printable_bounded_line(exc: Exception, expected: str) -> None:
    assert detail(exc) == expected


def test_a_screened_refusal_travels_with_its_error() -> None:
    refusal = Refusal(405, "connect_not_supported", "no", "")
    assert classify(RefusedRequest(refusal)) is refusal


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "internal_error"), (504, "gateway_timeout"), (503, "service_unavailable")],
)
def test_errors_outside_the_parser_keep_their_status(status: int, code: str) -> None:
    assert (for_status(status).status, for_status(status).code) == (status, code)
