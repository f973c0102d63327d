"""Slow clients and floods against the real receiver process: others are still served quickly.

While they run, normal callbacks keep getting 200 with low latency:

* slowloris: hundreds of connections sending their headers a byte at a time.
  ``BRIDGE_HTTP__HEADER_TIMEOUT`` (5 s by default, 2 s here; aiohttp has no such timeout of its
  own, see ``bridge/web/connection.py``) closes each, long before ``BRIDGE_HTTP__KEEPALIVE_TIMEOUT``
  (75 s by default, 60 s here) would, and the test checks it holds;
* slow bodies: complete headers, then a body byte now and then. ``BRIDGE_HTTP__BODY_TIMEOUT``
  (10 s by default, 2 s here) bounds the body read: each gets 408, its partial body goes to the
  dead-letter topic and the connection is closed;
* oversized bodies: megabytes announced and sent; the receiver reads ``MAX_BODY_BYTES``, answers
  413 at once, drops the rest it reads within ``LINGERING_TIME`` and closes the connection;
* header floods: header lines over aiohttp's 8190-byte limit get 400 from the HTTP parser.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.support.callbacks import callback, post_json
from tests.support.kafka_records import read_to_end
from tests.support.processes import receiver_process
from tests.support.stats import percentile

pytestmark = [pytest.mark.integration, pytest.mark.fault]

KEEPALIVE = 60.0
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
SHUTDOWN = 3.0
ATTACK_SECONDS = 8.0
SLOWLORIS = 300
SLOW_BODIES = 50
OVERSIZED_SENDERS = 6
# Far more than the kernel and the client buffer: a 413 before it is all sent was not read whole.
OVERSIZED_BYTES = 64 * 1024 * 1024
CHUNK = 64 * 1024


async def _slowloris(port: int, closed_after: list[float | None]) -> None:
    """Send a header a byte every 0.5 s; note when the server hangs up (None: it never did)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    result: float | None = None
    try:
        writer.write(b"POST /callbacks/calls HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for byte in b"X-Slow-Header: " + b"a" * 100:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(1024), timeout=0.5)
            except TimeoutError:
                if time.monotonic() - started > ATTACK_SECONDS + HEADER_TIMEOUT:
                    break
                continue
            result = time.monotonic() - started  # EOF or an answer: the server gave up on us
            assert data == b"" or data.startswith(b"HTTP/1.")
            break
    except (ConnectionResetError, BrokenPipeError):
        result = time.monotonic() - started
    finally:
        writer.close()
    closed_after.append(result)


async def _slow_body(port: int, stop: asyncio.Event, held: list[bool]) -> None:
    """Complete headers, then one body byte every 0.5 s until told to stop."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /callbacks/calls HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n"
    )
    closed = False
    try:
        while not stop.is_set():
            writer.write(b" ")
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(1024), timeout=0.5)
            except TimeoutError:
                continue
            # Answered (408) or closed: either way the receiver let go of this body.
            closed = answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
            if closed:
                break
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    held.append(not closed)
    if not stop.is_set():
        writer.close()
        return
    # Leave the connection open: the receiver's shutdown must not wait for it forever.
    await asyncio.sleep(SHUTDOWN + 6)
    writer.close()


async def _oversized(url: str, stop: asyncio.Event, answers: list[tuple[int | str, int]]) -> None:
    """Post oversized bodies; note each answer and how much of its body had been sent by then."""
    async with aiohttp.ClientSession() as session:
        for _ in range(40):
            if stop.is_set():
                return
            sent = 0

            async def body() -> AsyncIterator[bytes]:
                nonlocal sent
                while sent < OVERSIZED_BYTES:
                    sent += CHUNK
                    yield b"x" * CHUNK

            try:
                async with session.post(
                    url + "/callbacks/calls",
                    data=body(),
                    headers={
                        "Content-Type": "application/json",
                        "Content-Length": str(OVERSIZED_BYTES),
                    },
                ) as response:
                    answers.append((response.status, sent))
                    await response.read()
            except aiohttp.ClientError as exc:
                # The receiver answered 413 and closed while we were still uploading.
                answers.append((type(exc).__name__, sent))


async def _header_flood(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /callbacks/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
            + b"h" * 20_000
            + b"\r\n\r\n"
        )
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), timeout=5)
    except (ConnectionResetError, BrokenPipeError):
        return b"reset"
    finally:
        writer.close()


async def _normal(
    session: aiohttp.ClientSession,
    url: str,
    stop: asyncio.Event,
    out: list[tuple[int, float]],
    count: int = 5000,
) -> None:
    for _ in range(count):
        if stop.is_set():
            return
        started = time.monotonic()
        status, _ = await post_json(session, url, callback())
        out.append((status, time.monotonic() - started))
        await asyncio.sleep(0.01)


@pytest.mark.timeout(120)
async def test_slow_clients_and_floods_do_not_block_callers(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    events, dlq = await new_topic("events"), await new_topic("dlq")
    env = {
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BRIDGE_TOPICS__CALL_EVENTS": events,
        "BRIDGE_TOPICS__DEAD_LETTERS": dlq,
        "BRIDGE_HTTP__KEEPALIVE_TIMEOUT": str(KEEPALIVE),
        "BRIDGE_HTTP__HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "BRIDGE_HTTP__BODY_TIMEOUT": str(BODY_TIMEOUT),
        "BRIDGE_HTTP__SHUTDOWN_TIMEOUT": str(SHUTDOWN),
        "BRIDGE_LOG__LEVEL": "WARNING",
    }
    log_path = tmp_path / "receiver.log"
    baseline: list[tuple[int, float]] = []
    during: list[tuple[int, float]] = []
    closed_after: list[float | None] = []
    held: list[bool] = []
    oversized: list[tuple[int | str, int]] = []
    stop = asyncio.Event()
    async with receiver_process(env, log_path) as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        async with aiohttp.ClientSession() as session:
            quiet = asyncio.Event()
            await asyncio.gather(*(_normal(session, url, quiet, baseline, 50) for _ in range(4)))
            attack = [asyncio.create_task(_slowloris(port, closed_after)) for _ in range(SLOWLORIS)]
            attack += [
                asyncio.create_task(_slow_body(port, stop, held)) for _ in range(SLOW_BODIES)
            ]
            attack += [
                asyncio.create_task(_oversized(url, stop, oversized))
                for _ in range(OVERSIZED_SENDERS)
            ]
            await asyncio.sleep(0.5)  # the attack is under way
            normal = [asyncio.create_task(_normal(session, url, stop, during)) for _ in range(4)]
            floods = await asyncio.gather(*(_header_flood(port) for _ in range(20)))
            await asyncio.sleep(ATTACK_SECONDS)
            stop.set()
            await asyncio.gather(*normal)
            async with session.get(f"{url}/healthz") as health:
                assert health.status == 200
        # Slow-body connections are still open: SIGTERM must end the process anyway.
        await asyncio.sleep(0.2)
        terminated = time.monotonic()
        proc.terminate()
        # The shutdown timeout ends them: a receiver that waited for them would not exit.
        code = await asyncio.wait_for(proc.wait(), SHUTDOWN + 60)
        shutdown = time.monotonic() - terminated
        await asyncio.gather(*attack)

    letters = [json.loads(r.value) for r in await read_to_end(kafka_bootstrap, dlq)]
    too_large = sum(1 for x in letters if x["reason_code"] == "payload_too_large")
    stalled = [x for x in letters if x["reason_code"] == "request_timeout"]
    normal_latency = [t for _, t in during]
    answered_413 = [t for s, t in oversized if s == 413]
    closed = [t for t in closed_after if t is not None]
    print(
        f"\nslow clients: normal callbacks before {len(baseline)} (p50 "
        f"{percentile([t for _, t in baseline], 0.5) * 1000:.1f} ms, p99 "
        f"{percentile([t for _, t in baseline], 0.99) * 1000:.1f} ms), during the attack "
        f"{len(during)} {dict(Counter(s for s, _ in during))} (p50 "
        f"{percentile(normal_latency, 0.5) * 1000:.1f} ms, p99 "
        f"{percentile(normal_latency, 0.99) * 1000:.1f} ms, max "
        f"{max(normal_latency, default=0) * 1000:.1f} ms); slowloris {len(closed)}/{SLOWLORIS} "
        f"closed by the receiver after {min(closed, default=0):.1f}-{max(closed, default=0):.1f}s "
        f"(header timeout {HEADER_TIMEOUT:g}s); oversized {len(oversized)} requests of "
        f"{OVERSIZED_BYTES >> 20} MiB: {dict(Counter(s for s, _ in oversized))}, 413 after at most "
        f"{max(answered_413, default=0) >> 10} KiB sent, {too_large} dead letters; header "
        f"floods {dict(Counter(f.split(b' ')[1] if f.startswith(b'HTTP') else f for f in floods))}"
        f"; slow bodies held open by the receiver for the whole attack: {sum(held)}/{len(held)}, "
        f"408 dead letters {len(stalled)} (body timeout {BODY_TIMEOUT:g}s); SIGTERM exit {code} "
        f"in {shutdown:.1f}s."
    )
    assert {s for s, _ in baseline} == {200}
    assert during, "no normal callback during the attack"
    assert {s for s, _ in during} == {200}, "a normal caller was refused during the attack"
    # Closed by the header timeout (never early), not by the keep-alive: each slowloris gives up
    # on its own after the attack and the header timeout, long before that.
    assert len(closed) == SLOWLORIS, "a slowloris connection outlived the header timeout"
    assert min(closed) >= HEADER_TIMEOUT - 0.5
    assert answered_413, "no oversized body was answered"
    assert {s for s, _ in oversized} <= {413, "ClientOSError", "ServerDisconnectedError"}
    assert max(answered_413) < OVERSIZED_BYTES, "an oversized body was read whole before the 413"
    assert too_large >= len(answered_413)
    assert all(f.startswith(b"HTTP/1.") and b" 400 " in f for f in floods), floods[:3]
    assert not any(held), "a slow body outlived the body timeout"
    assert len(stalled) == SLOW_BODIES, "a stalled body was not dead-lettered"
    assert all(x["http_status"] == 408 and x["request"]["body_truncated"] for x in stalled)
    assert code == 0
