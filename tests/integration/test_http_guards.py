"""The callback port against slow and malformed request heads, on the real receiver process.

* A request head must be complete within ``BRIDGE_HTTP__HEADER_TIMEOUT``: headers sent a byte
  at a time get the connection closed before they are complete, whatever the keep-alive
  timeout (an hour here), while an idle keep-alive connection stays open.
* Requests aiohttp's parser refuses (400 before any handler) are each counted, and logged in
  one line with a count rather than one line each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bridge.web.server import LINGERING_TIME
from tests.support.kafka_broker import NewTopicFactory
from tests.support.processes import receiver_process
from tests.support.servers import metric

pytestmark = pytest.mark.integration

HEADER_TIMEOUT = 1.0
# Between two bytes of a slow head: the head takes several header timeouts to send.
PACE = 0.05

SLOW_HEAD = (
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
)  # fmt: skip


@pytest.fixture
async def receiver(
    kafka_bootstrap: str, new_topic: NewTopicFactory, tmp_path: Path
) -> AsyncIterator[tuple[str, Path]]:
    """A real receiver process: its URL and its log file."""
    env = {
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BRIDGE_TOPICS__CALL_EVENTS": await new_topic("events"),
        "BRIDGE_TOPICS__DEAD_LETTERS": await new_topic("dlq"),
        "BRIDGE_HTTP__HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "BRIDGE_HTTP__KEEPALIVE_TIMEOUT": "3600",
    }
    log_path = tmp_path / "receiver.log"
    async with receiver_process(env, log_path) as (_, url):
        yield url, log_path


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _dribble(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
) -> tuple[bool, bytes]:
    """Send ``head`` a byte at a time: whether all of it went out, and what came back."""
    answer = asyncio.create_task(reader.read())  # to EOF: the server's close
    sent_all = False
    try:
        for byte in head:
            if answer.done():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(PACE)
        else:
            sent_all = True
    except (ConnectionResetError, BrokenPipeError):
        pass
    try:
        received = await answer
    except ConnectionResetError:
        received = b""
    writer.close()
    return sent_all, received


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> bytes:
    """One whole request, and the head of its answer (the body read and dropped)."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return head


async def test_a_head_sent_a_byte_at_a_time_is_cut_off(receiver: tuple[str, Path]) -> None:
    url, _ = receiver
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
    sent_all, received = await _dribble(reader, writer, SLOW_HEAD)
    assert not sent_all, f"the server waited for the whole head and answered {received[:40]!r}"
    assert received == b""  # closed, not answered
    async with aiohttp.ClientSession() as http:
        series = 'bridge_http_refused_total{reason="header_timeout"}'
        assert await metric(http, url, series) == 1


async def test_idle_keep_alive_is_not_a_slow_head_but_a_slow_next_head_is(
    receiver: tuple[str, Path],
) -> None:
    url, _ = receiver
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert (await _exchange(reader, writer, request)).startswith(b"HTTP/1.1 200 ")
    # Idle between requests is the keep-alive timeout's business, not the head's.
    await asyncio.sleep(2 * HEADER_TIMEOUT)
    assert (await _exchange(reader, writer, request)).startswith(b"HTTP/1.1 200 ")
    sent_all, received = await _dribble(reader, writer, SLOW_HEAD)
    assert not sent_all, f"the server waited for the whole head and answered {received[:40]!r}"
    assert received == b""


async def test_malformed_requests_are_each_counted_and_logged_in_one_line(
    receiver: tuple[str, Path],
) -> None:
    url, log_path = receiver
    malformed = [
        b"GET /callbacks/calls HTTP/1.1\r\nHost: a\r\nX-Bad\x01: y\r\n\r\n",  # header token
        b"GET /callbacks/calls HTTP/1.1\r\nHost: a\r\nX: " + b"h" * 9000 + b"\r\n\r\n",
        b"GARBAGE\r\n\r\n",  # not HTTP at all (aiohttp itself logs that at DEBUG)
    ] * 10
    for raw in malformed:
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
        writer.write(raw)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.0 400 "), answer[:60]
    log = log_path.read_text(encoding="utf-8")
    lines = [line for line in log.splitlines() if "malformed" in line]
    assert len(lines) == 1, lines
    assert '"message": "1 HTTP requests refused (malformed)' in lines[0]
    assert "Error handling request" not in log
    async with aiohttp.ClientSession() as http:
        counted = await metric(http, url, 'bridge_http_refused_total{reason="malformed"}')
    assert counted == len(malformed)


async def test_a_body_refused_as_too_large_is_not_read_on_for_long(
    receiver: tuple[str, Path],
) -> None:
    # After its 413 the sender keeps sending (as a client that does not read answers while it
    # uploads does): the receiver reads and drops it for LINGERING_TIME, then hangs up, rather
    # than for aiohttp's 10 s at whatever rate the sender manages.
    url, _ = receiver
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
    writer.write(
        b"POST /callbacks/calls HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (1 << 40)
    )
    chunk = b" " * 65536
    answer = asyncio.create_task(reader.readuntil(b"\r\n\r\n"))
    while not answer.done():
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.005)
    assert (await answer).startswith(b"HTTP/1.1 413 ")
    started = time.monotonic()
    try:
        while time.monotonic() - started < 30:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.01)
    except (ConnectionResetError, BrokenPipeError):
        pass
    held = time.monotonic() - started
    writer.close()
    assert held < LINGERING_TIME + 3, f"the receiver read the refused body for {held:.1f}s"
