"""Hostile input costs little, gets a precise 4xx and a bounded dead letter, changes nothing.

Raw HTTP over a socket where a client library would tidy the bytes up (compressed bodies,
non-UTF-8 header bytes, header floods).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from bridge.ingest import parsing
from bridge.ingest.dead_letters import dead_letter_bound
from tests.support.bridge_app import BridgeFactory, RunningBridge
from tests.support.callbacks import callback
from tests.support.kafka_records import consume_all, consume_for

pytestmark = pytest.mark.integration


async def raw(bridge: RunningBridge, head: bytes, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    """Send one raw request to the callback path; the status and the JSON answer."""
    url = urlsplit(bridge.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head + b"\r\n" + body)
        await writer.drain()
        status_line = await reader.readline()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    answer = data.split(b"\r\n\r\n", 1)[1]
    return int(status_line.split()[1]), json.loads(answer) if answer.strip() else {}


def post_head(body: bytes, *extra: bytes) -> bytes:
    lines = [
        b"POST /callbacks/calls HTTP/1.1",
        b"Host: bridge",
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(body)).encode(),
        b"Connection: close",
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n"


async def only_dead_letter(bridge: RunningBridge) -> tuple[dict[str, Any], int]:
    """The one dead letter written, and its size on the wire."""
    servers, topics = bridge.settings.kafka.bootstrap_servers, bridge.settings.topics
    [record] = await consume_all(servers, topics.dead_letters, expected=1)
    assert await consume_for(servers, topics.call_events, seconds=0.3) == []
    return json.loads(record.value), len(record.value)


async def still_ready(bridge: RunningBridge) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{bridge.url}/readyz") as response:
        assert response.status == 200, await response.text()


async def test_a_gzip_body_is_refused_without_inflating_it(start_bridge: BridgeFactory) -> None:
    bridge = await start_bridge()
    bomb = gzip.compress(b"{" + b" " * 400_000 + b"}")
    assert len(bomb) < 1000
    status, answer = await raw(bridge, post_head(bomb, b"Content-Encoding: gzip"), bomb)
    assert (status, answer["error"]["code"]) == (415, "unsupported_content_encoding")
    letter, size = await only_dead_letter(bridge)
    assert size < 4096  # ~ the compressed body, base64: never the 400 KB it inflates to
    assert letter["request"]["body_encoding"] == "base64"
    await still_ready(bridge)


async def test_non_utf8_header_bytes_on_a_refused_request_still_make_a_dead_letter(
    start_bridge: BridgeFactory,
) -> None:
    bridge = await start_bridge()
    body = b"not json"
    status, answer = await raw(bridge, post_head(body, b"User-Agent: caf\xe9-\xff"), body)
    assert (status, answer["error"]["code"]) == (400, "malformed_body")
    letter, _ = await only_dead_letter(bridge)
    assert letter["request"]["headers"]["User-Agent"].startswith("caf")
    await still_ready(bridge)


async def test_a_header_flood_makes_a_small_dead_letter(start_bridge: BridgeFactory) -> None:
    bridge = await start_bridge()
    flood = [f"X-Junk-{n}: {'j' * 8000}".encode() for n in range(60)]
    body = b"\x01" * 60_000  # control characters, not JSON
    status, _ = await raw(bridge, post_head(body, b"User-Agent: " + b"u" * 8000, *flood), body)
    assert status == 400
    letter, size = await only_dead_letter(bridge)
    assert size < 100_000
    assert len(letter["request"]["headers"]["User-Agent"]) <= 1025
    await still_ready(bridge)


@pytest.mark.parametrize(
    ("value", "status", "code"),
    [
        (b"9" * 4301, 400, "malformed_body"),
        (b"1" * 4000 + b"0", 422, "invalid_fields"),
        (b'"' + b"1" * 4000 + b'"', 422, "invalid_fields"),
        (b"true", 422, "invalid_fields"),
        (b"2147483648", 422, "invalid_fields"),
    ],
)
async def test_absurd_billable_seconds_are_refused_precisely(
    start_bridge: BridgeFactory, value: bytes, status: int, code: str
) -> None:
    bridge = await start_bridge()
    fields = json.dumps(callback("OUTBOUND", "END", disposition="ANSWERED"))
    body = fields[:-1].encode() + b', "billable_seconds": ' + value + b"}"
    got, answer = await raw(bridge, post_head(body), body)
    assert (got, answer["error"]["code"]) == (status, code)
    await only_dead_letter(bridge)
    await still_ready(bridge)


async def test_a_bug_costs_one_500_with_a_dead_letter_and_one_log_line(
    start_bridge: BridgeFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Fault injection, not a mock: the real app and broker, with the event mapping broken.
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected bug")

    bridge = await start_bridge()
    monkeypatch.setattr(parsing, "event_fields", broken)
    body = json.dumps(callback()).encode()
    with caplog.at_level(logging.WARNING, logger="bridge.ingest.receiver"):
        status, answer = await raw(bridge, post_head(body), body)
    assert (status, answer["error"]["code"]) == (500, "internal_error")
    assert "RuntimeError" in answer["error"]["message"]
    letter, _ = await only_dead_letter(bridge)
    assert (letter["reason_code"], letter["http_status"]) == ("internal_error", 500)
    [line] = [r for r in caplog.records if r.name == "bridge.ingest.receiver"]
    assert line.exc_info is None  # no traceback per request
    async with aiohttp.ClientSession() as http, http.get(f"{bridge.url}/metrics") as response:
        assert 'outcome="error"} 1.0' in await response.text()
    await still_ready(bridge)


async def test_a_sender_that_hangs_up_mid_body_is_an_incomplete_body_not_a_bug(
    start_bridge: BridgeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = await start_bridge()
    body = json.dumps(callback()).encode()
    url = urlsplit(bridge.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    with caplog.at_level(logging.WARNING, logger="bridge.ingest.receiver"):
        writer.write(post_head(body, b"Expect: 100-continue") + b"\r\n")
        await writer.drain()
        # aiohttp says "go on" as it hands the request over: the handler is reading the body.
        assert (await reader.readline()).startswith(b"HTTP/1.1 100")
        writer.write(body[:10])
        await writer.drain()
        writer.close()  # the rest never comes
        await writer.wait_closed()
        letter, _ = await only_dead_letter(bridge)
    assert (letter["reason_code"], letter["http_status"]) == ("request_timeout", 408)
    assert "closed the connection" in letter["reason"]
    assert letter["request"]["body"] == body[:10].decode()
    assert letter["request"]["body_truncated"] is True
    # The sender's doing, not a bug: no ERROR line, no outcome "error" to alert on.
    assert [r.levelname for r in caplog.records if r.name == "bridge.ingest.receiver"] == [
        "WARNING"
    ]
    async with aiohttp.ClientSession() as http, http.get(f"{bridge.url}/metrics") as response:
        metrics = await response.text()
    assert 'outcome="error"}' not in metrics
    assert 'outcome="rejected"} 1.0' in metrics
    await still_ready(bridge)


async def test_a_dead_letter_too_large_for_kafka_is_kept_without_its_body(
    start_bridge: BridgeFactory,
) -> None:
    # A body limit raised past what a Kafka record can carry (1 MiB by default).
    bridge = await start_bridge(http={"max_body_bytes": 2_000_000})
    body = b'{"uid": "' + b"u" * 1_500_000 + b'"}'
    status, answer = await raw(bridge, post_head(body), body)
    # The callback's own refusal, not a 503 that FoneStorm would retry for ever.
    assert (status, answer["error"]["code"]) == (422, "invalid_fields")
    letter, size = await only_dead_letter(bridge)
    assert (letter["reason_code"], letter["http_status"]) == ("invalid_fields", 422)
    assert "body is not kept" in letter["reason"]
    assert (letter["request"]["body"], letter["request"]["body_truncated"]) == ("", True)
    assert letter["request"]["headers"]["Content-Length"] == str(len(body))
    assert size < 10_000
    await still_ready(bridge)


async def test_a_content_encoding_on_a_second_line_counts(start_bridge: BridgeFactory) -> None:
    bridge = await start_bridge()
    body = json.dumps(callback()).encode()
    # One list in HTTP: "identity, gzip", a compressed body, whatever the first line says.
    extra = (b"Content-Encoding: identity", b"Content-Encoding: gzip")
    status, answer = await raw(bridge, post_head(body, *extra), body)
    assert (status, answer["error"]["code"]) == (415, "unsupported_content_encoding")
    letter, _ = await only_dead_letter(bridge)
    # What the receiver judged, so that a replay judges the same.
    assert letter["request"]["headers"]["Content-Encoding"] == "identity, gzip"
    await still_ready(bridge)


async def test_a_transfer_coding_before_chunked_is_compression_too(
    start_bridge: BridgeFactory,
) -> None:
    bridge = await start_bridge()
    body = json.dumps(callback()).encode()
    # aiohttp takes the chunks apart and leaves the gzip to us: refused, as Content-Encoding is.
    head = post_head(b"", b"Transfer-Encoding: gzip, chunked")
    head = head.replace(b"Content-Length: 0\r\n", b"")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, answer = await raw(bridge, head, chunked)
    assert (status, answer["error"]["code"]) == (415, "unsupported_content_encoding")
    letter, _ = await only_dead_letter(bridge)
    assert letter["request"]["headers"]["Transfer-Encoding"] == "gzip, chunked"
    await still_ready(bridge)


async def test_a_body_announced_too_large_keeps_its_first_limit_bytes_however_it_arrives(
    start_bridge: BridgeFactory,
) -> None:
    bridge = await start_bridge(http={"max_body_bytes": 1000})
    body = b'{"uid": "' + b"u" * 5000 + b'"}'
    url = urlsplit(bridge.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(post_head(body, b"Expect: 100-continue") + b"\r\n")
        await writer.drain()
        # The handler is reading once aiohttp says "go on": the body comes in pieces after it.
        assert (await reader.readline()).startswith(b"HTTP/1.1 100")
        await reader.readline()
        for start in range(0, len(body), 300):
            writer.write(body[start : start + 300])
            await writer.drain()
            await asyncio.sleep(0.05)
        status_line = await reader.readline()
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413 ")
    letter, _ = await only_dead_letter(bridge)
    assert letter["request"]["body"] == body[:1000].decode()
    assert letter["request"]["body_truncated"] is True


async def test_every_line_of_a_repeated_header_is_kept_in_order_and_credentials_never(
    start_bridge: BridgeFactory,
) -> None:
    bridge = await start_bridge()
    body = b"not json"
    extra = (
        b"X-Forwarded-For: 10.0.0.1, 10.0.0.2",
        b"Authorization: Basic c2VjcmV0OnNlY3JldA==",
        b"x-forwarded-for: 10.0.0.3",
        b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        b"Cookie: session=s3cr3t-1",
        b"traceparent: 00-11111111111111111111111111111111-2222222222222222-01",
        b"Authorization: Bearer s3cr3t-2",
        b"Cookie: session=s3cr3t-3",
        b"X-Foo: 1",
        b"X-Foo: 2",
        b"X-Request-Id: caf\xe9",
        b"X-Request-Id:   spaced  ",
    )
    status, answer = await raw(bridge, post_head(body, *extra), body)
    assert (status, answer["error"]["code"]) == (400, "malformed_body")
    servers, topics = bridge.settings.kafka.bootstrap_servers, bridge.settings.topics
    [record] = await consume_all(servers, topics.dead_letters, expected=1)
    request = json.loads(record.value)["request"]
    assert request["header_lines"] == [
        {"name": name, "value": value, "value_encoding": encoding}
        for name, value, encoding in [
            ("Host", "bridge", "utf-8"),
            ("Content-Type", "application/json", "utf-8"),
            ("Content-Length", "8", "utf-8"),
            ("X-Forwarded-For", "10.0.0.1, 10.0.0.2", "utf-8"),
            ("x-forwarded-for", "10.0.0.3", "utf-8"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "utf-8"),
            ("traceparent", "00-11111111111111111111111111111111-2222222222222222-01", "utf-8"),
            ("X-Request-Id", base64.b64encode(b"caf\xe9").decode(), "base64"),
            ("X-Request-Id", "spaced", "utf-8"),
        ]
    ]
    # The mapping is as it was: each header once, its lines joined as HTTP joins a list.
    assert request["headers"]["X-Forwarded-For"] == "10.0.0.1, 10.0.0.2, 10.0.0.3"
    # No credential, however often it came.
    assert b"s3cr3t" not in record.value
    assert b"c2VjcmV0" not in record.value
    assert b"X-Foo" not in record.value
    await still_ready(bridge)


async def test_a_flood_of_repeated_kept_headers_makes_a_bounded_dead_letter(
    start_bridge: BridgeFactory,
) -> None:
    bridge = await start_bridge()
    # Quotes: two bytes each in JSON (the parser refuses control characters in a header).
    flood = [b"X-Forwarded-For: " + b'"' * 8000] * 120
    body = b"not json"
    status, _ = await raw(bridge, post_head(body, *flood), body)
    assert status == 400
    letter, size = await only_dead_letter(bridge)
    lines = letter["request"]["header_lines"]
    assert len(lines) == 3 + 120  # Host, Content-Type, Content-Length, and the whole flood
    assert lines[3]["value"] == '"' * 1024 + "…"
    assert lines[-1]["value"] == "…"  # past what all the lines keep, each still says it came
    assert size <= dead_letter_bound(bridge.settings.http.max_body_bytes)
    await still_ready(bridge)
