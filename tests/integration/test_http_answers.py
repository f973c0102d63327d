"""Every answer of both ports is in the JSON error shape, raw bytes against the real receiver.

What aiohttp answers by itself, before any handler (a request its parser refuses, one no handler
can serve, a chunked body whose framing breaks half-way), gets the bridge's
``{"error": {"code", "message"}}`` with a precise code; a callback whose body breaks is
dead-lettered with what arrived of it, at once rather than after the body timeout (also behind
another request in the same packet, or after a head whose blank line was cut between packets),
and so is a callback refused for its ``Expect``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.support.callbacks import callback
from tests.support.kafka_broker import NewTopicFactory
from tests.support.kafka_records import consume_all, read_to_end
from tests.support.raw_http import (
    Receiver,
    exchange,
    letters_by_request_id,
    parse,
    read_answer,
    replay_refusal,
    start_receiver,
)
from tests.support.servers import metric

pytestmark = pytest.mark.integration


@pytest.fixture
async def receiver(
    kafka_bootstrap: str, new_topic: NewTopicFactory, tmp_path: Path
) -> AsyncIterator[Receiver]:
    """A receiver process with its operations endpoints on an admin port."""
    async with start_receiver(kafka_bootstrap, new_topic, tmp_path, extensions=True) as running:
        yield running


@pytest.fixture(params=["c", "python"])
async def either_parser(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    tmp_path: Path,
) -> AsyncIterator[tuple[str, Receiver]]:
    """A receiver process with aiohttp's C parser, then with its pure-Python one."""
    parser: str = request.param
    async with start_receiver(
        kafka_bootstrap, new_topic, tmp_path, extensions=parser == "c"
    ) as running:
        yield parser, running


CHUNKED_HEAD = (
    "POST /callbacks/calls HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
    "Transfer-Encoding: chunked\r\nX-Request-Id: {id}\r\n{expect}\r\n"
)

#: Chunked bodies whose framing breaks, and what arrived of the body before the fault.
BROKEN_BODIES = {
    "a chunk size that is not hex": (b'5\r\n{"a":\r\nzz\r\n', b'{"a":'),
    "a chunk longer than announced": (b'2\r\n{"a":1}\r\n0\r\n\r\n', b'{"'),
    "no CRLF after a chunk": (b'7\r\n{"a":1}0\r\n\r\n', b'{"a":1}'),
}


async def test_a_broken_chunked_body_is_refused_at_once_and_dead_lettered(
    either_parser: tuple[str, Receiver],
) -> None:
    parser, receiver = either_parser
    # Which parser runs: only the pure-Python one takes a method it does not know.
    unknown_method = await exchange(
        receiver.port, b"BREW /x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )
    assert unknown_method.status == (400 if parser == "c" else 404)
    expected: dict[str, bytes] = {}
    for name, (body, before_fault) in BROKEN_BODIES.items():
        # First the body sent once the receiver reads it (aiohttp alone answered that only
        # when BRIDGE_HTTP__BODY_TIMEOUT had passed), then head and body in one packet.
        for continued in (True, False):
            request_id = str(uuid.uuid4())
            expect = "Expect: 100-continue\r\n" if continued else ""
            head = CHUNKED_HEAD.format(id=request_id, expect=expect).encode()
            parts = (head, body) if continued else (head + body,)
            answer = await exchange(receiver.port, *parts, continued=continued)
            case = f"{name}, {'after 100-continue' if continued else 'with the head'}"
            assert answer.status_line.startswith(b"HTTP/1.1 400 "), (case, answer)
            assert answer.error()["code"] == "malformed_chunked_body", (case, answer)
            assert answer.headers.get("connection") == "close", (case, answer)
            # The pure-Python parser fails a body itself, before the server can take what it
            # holds: a body that came with its head reaches the receiver empty.
            kept = b"" if parser == "python" and not continued else before_fault
            expected[request_id] = kept
    await assert_broken_body_letters(receiver, expected)


async def assert_broken_body_letters(receiver: Receiver, expected: dict[str, bytes]) -> None:
    """One dead letter of a broken chunked body per request id, keeping what arrived of it;
    and replay refuses each as such."""
    letters = await letters_by_request_id(receiver, expected=len(expected))
    assert set(letters) == set(expected)
    for request_id, kept in expected.items():
        letter = letters[request_id]
        assert (letter["reason_code"], letter["http_status"]) == ("malformed_chunked_body", 400)
        assert "chunked body is malformed" in letter["reason"]
        assert letter["request"]["body"] == kept.decode(), letter
        assert letter["request"]["body_truncated"] is True
        assert letter["request"]["headers"]["Transfer-Encoding"] == "chunked"
        assert [line["name"] for line in letter["request"]["header_lines"]] == [
            "Host",
            "Content-Type",
            "Transfer-Encoding",
            "X-Request-Id",
        ], letter
        assert replay_refusal(letter) == (
            "malformed_chunked_body",
            "the body did not arrive whole (its chunked framing broke), so it cannot be replayed",
        )


def fine_callback() -> bytes:
    """A valid JSON callback POST, its body framed by its length."""
    body = json.dumps(callback()).encode()
    return (
        b"POST /callbacks/calls HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


async def test_a_broken_body_behind_a_pipelined_callback_is_dead_lettered(
    either_parser: tuple[str, Receiver],
) -> None:
    # The parser meets the second head and the fault in one feed: it hands neither over.
    parser, receiver = either_parser
    expected: dict[str, bytes] = {}
    for name, (body, before_fault) in BROKEN_BODIES.items():
        request_id = str(uuid.uuid4())
        head = CHUNKED_HEAD.format(id=request_id, expect="").encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        try:
            # One write, so one packet: the server reads both requests at once.
            writer.write(fine_callback() + head + body)
            await writer.drain()
            first = await read_answer(reader)
            second = parse(await reader.read())  # to EOF: it closes the connection
        finally:
            writer.close()
        assert first.status == 200, (name, first)
        assert second.status == 400, (name, second)
        assert second.error()["code"] == "malformed_chunked_body", (name, second)
        # As when the body comes with its head (above).
        expected[request_id] = b"" if parser == "python" else before_fault
    # Behind a request to another path, one to a path that is not a callback's: answered by
    # its handler, which reads no body, and the connection closed after it all the same.
    body = BROKEN_BODIES["a chunk size that is not hex"][0]
    reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
    try:
        head = CHUNKED_HEAD.replace("/callbacks/calls", "/elsewhere").format(id="-", expect="")
        writer.write(b"GET /elsewhere HTTP/1.1\r\nHost: b\r\n\r\n" + head.encode() + body)
        await writer.drain()
        assert (await read_answer(reader)).status == 404
        answer = parse(await reader.read())
        assert answer.error()["code"] == "not_found"
        assert answer.headers.get("connection") == "close", answer
    finally:
        writer.close()
    await assert_broken_body_letters(receiver, expected)
    events = await read_to_end(receiver.bootstrap, receiver.events)
    assert len(events) == len(BROKEN_BODIES)


async def test_a_broken_body_after_a_head_whose_blank_line_was_cut_is_dead_lettered(
    either_parser: tuple[str, Receiver],
) -> None:
    # The head's end and the fault come in one feed, though no packet holds a whole CRLF CRLF.
    parser, receiver = either_parser
    expected: dict[str, bytes] = {}
    for name, (body, before_fault) in BROKEN_BODIES.items():
        for cut in (1, 2, 3):  # bytes of the head's last CRLF CRLF sent with the body
            request_id = str(uuid.uuid4())
            head = CHUNKED_HEAD.format(id=request_id, expect="").encode()
            reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
            try:
                # Behind a request the server answers: by that answer it has read the head,
                # but for its last bytes, sent with the body only then.
                writer.write(b"GET /elsewhere HTTP/1.1\r\nHost: b\r\n\r\n" + head[:-cut])
                await writer.drain()
                assert (await read_answer(reader)).status == 404
                writer.write(head[-cut:] + body)
                await writer.drain()
                answer = parse(await reader.read())
            finally:
                writer.close()
            case = (name, cut)
            assert answer.status == 400, (case, answer)
            assert answer.error()["code"] == "malformed_chunked_body", (case, answer)
            expected[request_id] = b"" if parser == "python" else before_fault
    await assert_broken_body_letters(receiver, expected)


EXPECT_HEAD = (
    "POST {path} HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
    "{framing}\r\nExpect: 200-ok\r\nX-Request-Id: {id}\r\n{auth}\r\n"
)
#: What the guarded receiver below takes as a callback's credentials.
CREDENTIALS = "Authorization: Basic Zm9uZTpzdG9ybQ==\r\n"  # fone:storm


async def test_a_callback_with_an_unknown_expectation_is_dead_lettered(
    kafka_bootstrap: str, new_topic: NewTopicFactory, tmp_path: Path
) -> None:
    auth = {
        "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED": "false",
        "BRIDGE_CALLBACKS__USERNAME": "fone",
        "BRIDGE_CALLBACKS__PASSWORD": "storm",
    }
    body = json.dumps(callback()).encode()
    length = f"Content-Length: {len(body)}"
    broken, before_fault = BROKEN_BODIES["a chunk size that is not hex"]
    async with start_receiver(
        kafka_bootstrap, new_topic, tmp_path, extensions=True, env=auth
    ) as receiver:
        # Port, path, credentials, framing, what follows the head; then what a dead letter
        # keeps of the body and whether that is all of it (None: no dead letter).
        cases: list[tuple[int, str, bool, str, bytes, tuple[bytes, bool] | None]] = [
            (receiver.port, "/callbacks/calls", True, length, body, (body, False)),
            # The sender waits for a go-ahead: nothing of the body has come.
            (receiver.port, "/callbacks/calls", True, length, b"", (b"", True)),
            (
                receiver.port,
                "/callbacks/calls",
                True,
                "Transfer-Encoding: chunked",
                broken,
                (before_fault, True),
            ),
            # A stranger writes no dead letter; nor does a request to another path.
            (receiver.port, "/callbacks/calls", False, length, body, None),
            (receiver.port, "/elsewhere", True, length, body, None),
            (receiver.admin_port, "/callbacks/calls", True, length, body, None),
        ]
        kept: dict[str, tuple[str, bytes, bool]] = {}
        for port, path, credentials, framing, after_head, letter_body in cases:
            request_id = str(uuid.uuid4())
            head = EXPECT_HEAD.format(
                path=path, framing=framing, id=request_id, auth=CREDENTIALS if credentials else ""
            ).encode()
            answer = await exchange(port, head + after_head)
            case = (port, path, credentials, framing, after_head[:20])
            # As aiohttp answers what it refuses itself (it cannot tell the version).
            assert answer.status_line.startswith(b"HTTP/1.0 417 "), (case, answer)
            assert answer.error()["code"] == "expectation_failed", (case, answer)
            if letter_body is not None:
                kept[request_id] = (framing.split(":")[0], *letter_body)
        letters = await letters_by_request_id(receiver, expected=len(kept))
        assert set(letters) == set(kept)
        assert len(await read_to_end(receiver.bootstrap, receiver.dead_letters)) == len(kept)
        for request_id, (framing_header, kept_body, truncated) in kept.items():
            letter = letters[request_id]
            assert (letter["reason_code"], letter["http_status"]) == ("expectation_failed", 417)
            assert "200-ok" in letter["reason"], letter
            request = letter["request"]
            assert (request["method"], request["path"]) == ("POST", "/callbacks/calls")
            assert (request["body"], request["body_truncated"]) == (kept_body.decode(), truncated)
            assert [line["name"] for line in request["header_lines"]] == [
                "Host",
                "Content-Type",
                framing_header,
                "X-Request-Id",
            ], letter
            if truncated:
                assert replay_refusal(letter) == (
                    "expectation_failed",
                    "the body was not read whole (its Expect was refused before it was), so it "
                    "cannot be replayed",
                )
        async with aiohttp.ClientSession() as http:
            series = 'bridge_dead_letters_total{reason="expectation_failed",source="callback"}'
            assert await metric(http, receiver.admin_url, series) == len(kept)
        assert await read_to_end(receiver.bootstrap, receiver.events) == []


#: What aiohttp's parser refuses, or hands over though no handler serves it: status and code.
REFUSED = [
    (b"GARBAGE\r\n\r\n", 400, "invalid_method"),
    (b"G@T / HTTP/1.1\r\nHost: b\r\n\r\n", 400, "invalid_method"),
    (b"GET / HTTX/1.1\r\nHost: b\r\n\r\n", 400, "bad_request_line"),
    (b"GET / HTTP/1.1\r\nHost: b\r\nX: " + b"h" * 9000 + b"\r\n\r\n", 400, "line_too_long"),
    (b"GET /" + b"p" * 9000 + b" HTTP/1.1\r\nHost: b\r\n\r\n", 400, "line_too_long"),
    (
        b"GET / HTTP/1.1\r\nHost: b\r\n"
        + b"".join(b"X-%d: x\r\n" % n for n in range(200))
        + b"\r\n",
        431,
        "too_many_headers",
    ),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "http_version_not_supported"),
    (b"GET / HTTP/1.7\r\nHost: b\r\n\r\n", 505, "http_version_not_supported"),
    (b"GET /healthz HTTP/2.0\r\nHost: b\r\n\r\n", 505, "http_version_not_supported"),
    (b"GET /healthz HTTP/0.9\r\nHost: b\r\n\r\n", 505, "http_version_not_supported"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40, 400, "https_on_http_port"),
    (b"GET * HTTP/1.1\r\nHost: b\r\n\r\n", 400, "invalid_request_target"),
    (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "missing_host"),
    (b"GET / HTTP/1.1\r\nHost: b\r\nX-Bad\x01: y\r\n\r\n", 400, "invalid_header"),
    (
        b"GET / HTTP/1.1\r\nHost: b\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n",
        400,
        "duplicate_header",
    ),
    (
        b"POST /callbacks/calls HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n{}",
        400,
        "invalid_body_framing",
    ),
    (
        b"POST /elsewhere HTTP/1.1\r\nHost: b\r\nExpect: tea\r\nContent-Length: 2\r\n\r\n{}",
        417,
        "expectation_failed",
    ),
]


async def test_what_aiohttp_refuses_by_itself_is_answered_in_json(receiver: Receiver) -> None:
    for port in (receiver.port, receiver.admin_port):
        for raw, status, code in REFUSED:
            answer = await exchange(port, raw)
            case = (port, raw[:40])
            # The parser cannot tell which version the request spoke: HTTP/1.0, as aiohttp.
            assert answer.status_line.startswith(b"HTTP/1.0 %d " % status), (case, answer)
            assert answer.error()["code"] == code, (case, answer)
    # Nothing of it was a callback: nothing kept.
    assert await read_to_end(receiver.bootstrap, receiver.dead_letters) == []


#: Targets that are not a path: CONNECT's host and port, the asterisk of OPTIONS.
NOT_A_PATH = [
    (b"CONNECT fonestorm.example:443 HTTP/1.1\r\nHost: fonestorm.example:443\r\n\r\n", "connect"),
    (b"CONNECT /callbacks/calls HTTP/1.1\r\nHost: b\r\n\r\n", "connect"),
    (b"OPTIONS * HTTP/1.1\r\nHost: b\r\n\r\n", "options"),
]


async def test_connect_and_the_asterisk_get_405_in_json_on_both_ports(receiver: Receiver) -> None:
    for port in (receiver.port, receiver.admin_port):
        for raw, method in NOT_A_PATH:
            answer = await exchange(port, raw)
            assert answer.status == 405, (port, raw, answer)
            assert answer.error()["code"] == f"{method}_not_supported", (port, raw, answer)
            # A 405 names what the target allows: nothing here.
            assert answer.headers.get("allow") == "", (port, raw, answer)
    async with aiohttp.ClientSession() as http:
        series = 'bridge_http_refused_total{reason="unsupported"}'
        assert await metric(http, receiver.admin_url, series) == 2 * len(NOT_A_PATH)
    assert await read_to_end(receiver.bootstrap, receiver.dead_letters) == []


async def test_an_absolute_form_target_is_routed_by_its_path(receiver: Receiver) -> None:
    # RFC 9112 3.2.2: a server must accept the absolute form, and routes it by its path.
    data = callback()
    query = urlencode(data).encode()
    answer = await exchange(
        receiver.port,
        b"GET http://fonestorm.example/callbacks/calls?%s HTTP/1.1\r\nHost: b\r\n"
        b"Connection: close\r\n\r\n" % query,
    )
    assert answer.status == 200, answer
    assert json.loads(answer.body)["call_id"] == data["uid"]
    [record] = await consume_all(receiver.bootstrap, receiver.events, expected=1)
    assert json.loads(record.value)["call_id"] == data["uid"]
    answer = await exchange(
        receiver.admin_port,
        b"GET http://bridge:9090/healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    assert (answer.status, json.loads(answer.body)) == (200, {"status": "ok"})
    # No path is "/" (RFC 9112 3.2.1), which nothing serves: the JSON 404 of any unknown path.
    for port in (receiver.port, receiver.admin_port):
        answer = await exchange(
            port, b"GET http://bridge HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
        )
        assert answer.status_line.startswith(b"HTTP/1.1 404 "), (port, answer)
        assert answer.error()["code"] == "not_found", (port, answer)
