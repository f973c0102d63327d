"""CPU per callback and per record, in-process: steadier than timing a server under wrk.

    python -m bench.cpu handler [--outbound] [--requests N]   # CallbackReceiver.handle
    python -m bench.cpu connection [--requests N]             # the same, through the HTTP server
    python -m bench.cpu publisher [--records N]               # Publisher.publish vs aiokafka
    python -m bench.cpu end-offsets [--rounds N]              # a ledger round, two ways

``handler`` runs the receiver's handler on pre-built GET / form / JSON callbacks with Kafka
stubbed (a done future): what the bridge's own code costs a callback. ``--outbound`` sends
outbound callbacks of calls the bridge did not place, 50 at a time, through a real correlator
that follows a ledger topic (``--bootstrap``): what proving "no placement in flight" costs.
``connection`` feeds the same inbound callbacks as raw HTTP/1.1 bytes to the bridge's connection
handler (``BridgeRequestHandler``, the app's router, the answer written to a transport that
keeps nothing), 50 keep-alive connections at a time: the handler plus aiohttp's request path
as the bridge configures it, without sockets or Kafka.
``publisher`` produces 450-byte records from 50 concurrent callers through the bridge's
``Publisher`` and through a plain ``AIOKafkaProducer.send_and_wait`` (``--bootstrap``).
``end-offsets`` asks a ledger topic's end offsets one round after another, through aiokafka's
``end_offsets()`` and through the follower's prepared request (``bridge.kafka.end_offsets``).
Figures are process CPU time per item, the best of three repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import streams, web
from aiohttp.test_utils import make_mocked_request
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from bridge.app import CALLBACK_PATH
from bridge.app import _freeze_heap as freeze_heap
from bridge.ingest.correlation import CallCorrelator
from bridge.ingest.receiver import CallbackReceiver
from bridge.kafka.end_offsets import EndOffsets
from bridge.kafka.lenient_records import read_any_header_name
from bridge.kafka.no_auto_create import forbid_topic_auto_creation
from bridge.kafka.options import topic_partitions
from bridge.kafka.publisher import Publisher
from bridge.kafka.topics import ensure_topics
from bridge.obs.metrics import Metrics
from bridge.settings import Settings
from bridge.web.appkeys import METRICS
from bridge.web.errors import add_json_fallbacks
from bridge.web.server import LINGERING_TIME, BridgeAppRunner

DISPOSITIONS = ["ANSWERED", "NO_ANSWER", "BUSY", "FAILED:503", "CANCEL"]


class _StubProducer:
    async def send(self, topic: str, **_: Any) -> asyncio.Future[RecordMetadata]:
        done: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        done.set_result(RecordMetadata(topic, 0, None, 1, 0, -1, 0))  # type: ignore[call-arg]
        return done


class _Protocol:
    _reading_paused = False

    def pause_reading(self, **_: Any) -> None:
        pass

    def resume_reading(self, **_: Any) -> None:
        pass


def _callbacks(count: int, direction: str) -> list[tuple[str, str, dict[str, str], bytes]]:
    """``(method, target, headers, body)`` of ``count`` callbacks: GET, form and JSON in turn."""
    run = uuid.uuid4().hex[:8]
    built = []
    for i in range(count):
        status = "BEGIN" if i % 2 == 0 else "END"
        fields: dict[str, Any] = {
            "uid": f"{run}-{i:08d}-aaaa-bbbb", "account_code": "AC1234",
            "direction": direction, "status": status,
            "from": f"321555{1000 + i % 700}", "to": "3215550000", "type": "VOICE",
        }  # fmt: skip
        if status == "END":
            fields |= {"disposition": DISPOSITIONS[i % 5], "billable_seconds": i % 300}
        headers: dict[str, str] = {}
        if i % 3 == 0:
            path, body = "/callbacks/calls?" + urlencode(fields), b""
        elif i % 3 == 1:
            path, body = "/callbacks/calls", urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            path, body = "/callbacks/calls", json.dumps(fields).encode()
            headers["Content-Type"] = "application/json"
        if body:
            headers["Content-Length"] = str(len(body))
        built.append(("GET" if i % 3 == 0 else "POST", path, headers, body))
    return built


def _requests(count: int, direction: str) -> list[web.Request]:
    loop = asyncio.get_running_loop()
    built = []
    for method, path, headers, body in _callbacks(count, direction):
        payload = streams.StreamReader(_Protocol(), 2**16, loop=loop)  # type: ignore[arg-type]
        if body:
            payload.feed_data(body)
        payload.feed_eof()
        built.append(make_mocked_request(method, path, headers=headers, payload=payload))
    return built


def _raw_requests(count: int) -> list[bytes]:
    """The inbound callbacks of :func:`_callbacks` as they come off the wire."""
    raw = []
    for method, path, headers, body in _callbacks(count, "INBOUND"):
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        raw.append(f"{head}\r\n".encode() + body)
    return raw


class _Transport(asyncio.Transport):
    """Keeps nothing of what is written; wakes whoever waits for the next answer."""

    def __init__(self) -> None:
        super().__init__()
        self.answered: asyncio.Future[None] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if bytes(data[:12]) != b"HTTP/1.1 200":
            raise AssertionError(f"not a 200: {bytes(data[:200])!r}")
        if self.answered is not None and not self.answered.done():
            self.answered.set_result(None)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def connection(count: int) -> None:
    settings = Settings(callbacks={"allow_unauthenticated": True})
    metrics = Metrics()
    publisher = Publisher(settings.kafka, metrics)
    publisher._producer = _StubProducer()  # type: ignore[assignment]
    receiver = CallbackReceiver(settings, publisher, metrics, None)
    app = web.Application(
        client_max_size=settings.http.max_body_bytes * 2,
        handler_args={"auto_decompress": False, "lingering_time": LINGERING_TIME},
    )
    app[METRICS] = metrics
    app.router.add_route("*", CALLBACK_PATH, receiver.handle)
    add_json_fallbacks(app.router)
    runner = BridgeAppRunner(
        app,
        header_timeout=settings.http.header_timeout,
        keepalive_timeout=settings.http.keepalive_timeout,
        access_log=None,
    )
    await runner.setup()
    server = runner.server
    assert server is not None  # noqa: S101
    loop = asyncio.get_running_loop()
    batches = [_raw_requests(count) for _ in range(4)]
    await freeze_heap(app)  # as the app does once started (the collector's threshold too)

    async def run(_: int) -> None:
        batch = iter(batches.pop())

        async def one_connection() -> None:
            transport = _Transport()
            protocol = server()
            protocol.connection_made(transport)
            for raw in batch:
                # The next request comes once the connection waits for it, as over a network
                # (its round trip is far longer than the connection takes to get there).
                while protocol._waiter is None:  # noqa: ASYNC110 - no event to wait on
                    await asyncio.sleep(0)
                transport.answered = loop.create_future()
                protocol.data_received(raw)
                await transport.answered
            protocol.connection_lost(None)

        await asyncio.gather(*(one_connection() for _ in range(50)))

    await _measure("connection (inbound, 50 connections)", "callback", count, run)
    await runner.cleanup()


async def _best_of_three(count: int, run: Callable[[int], Awaitable[None]]) -> list[float]:
    times = []
    for _ in range(3):
        started = time.process_time()
        await run(count)
        times.append((time.process_time() - started) / count * 1e6)
    return times


async def _measure(name: str, per: str, count: int, run: Callable[[int], Awaitable[None]]) -> None:
    """Warm ``run`` up, then print its best of three in us of CPU ``per`` item."""
    await run(count // 10)
    times = await _best_of_three(count, run)
    print(f"{name}: {min(times):.1f} us CPU per {per} "
          f"(repetitions {', '.join(f'{t:.1f}' for t in times)})")  # fmt: skip


async def handler(count: int, outbound: bool, bootstrap: str, ledger: str) -> None:
    settings = Settings(
        callbacks={"allow_unauthenticated": True},
        kafka={"bootstrap_servers": bootstrap, "create_topics": True},
        topics={"command_ledger": ledger},
    )
    metrics = Metrics()
    publisher = Publisher(settings.kafka, metrics)
    publisher._producer = _StubProducer()  # type: ignore[assignment]
    correlator = None
    if outbound:
        correlator = CallCorrelator(settings, metrics)
        await correlator.start()
        while not (correlator._follower.started and correlator.ready):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    receiver = CallbackReceiver(settings, publisher, metrics, correlator)
    direction = "OUTBOUND" if outbound else "INBOUND"
    for request in _requests(2000, direction):  # warm-up (and a check that they pass)
        assert (await receiver.handle(request)).status == 200  # noqa: S101
    batches = [_requests(count, direction) for _ in range(3)]
    gc.collect()
    gc.freeze()  # as the app does once started

    async def run(_: int) -> None:
        batch = iter(batches.pop())

        async def connection() -> None:
            for request in batch:
                await receiver.handle(request)

        await asyncio.gather(*(connection() for _ in range(50 if outbound else 1)))

    times = await _best_of_three(count, run)
    if correlator is not None:
        await correlator.stop()
    what = "outbound, not placed, 50 at a time" if outbound else "inbound"
    print(f"handler ({what}): {min(times):.1f} us CPU per callback "
          f"(repetitions {', '.join(f'{t:.1f}' for t in times)})")  # fmt: skip


async def publisher(count: int, bootstrap: str, topic: str) -> None:
    settings = Settings(kafka={"bootstrap_servers": bootstrap, "create_topics": True})
    await ensure_topics(settings, [topic])
    bridge = Publisher(settings.kafka, Metrics())
    await bridge.start()
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await plain.start()
    try:
        while not bridge.ready:  # noqa: ASYNC110 - a flag, not an event
            await asyncio.sleep(0.1)
        headers = [("ce_id", b"0" * 36), ("ce_time", b"2026-11-30T09:00:00.000000Z")]
        senders: dict[str, Callable[[bytes], Awaitable[object]]] = {
            "Publisher.publish": lambda key: bridge.publish(
                topic, b"x" * 450, key=key, headers=headers
            ),
            "AIOKafkaProducer.send_and_wait": lambda key: plain.send_and_wait(
                topic, b"x" * 450, key=key
            ),
        }
        for name, send in senders.items():

            async def run(total: int, send: Callable[[bytes], Awaitable[object]] = send) -> None:
                keys = iter(f"key-{uuid.uuid4().hex}-{i}".encode() for i in range(total))

                async def caller() -> None:
                    for key in keys:
                        await send(key)

                await asyncio.gather(*(caller() for _ in range(50)))

            await _measure(name, "record", count, run)
    finally:
        await plain.stop()
        await bridge.stop()


async def end_offsets(rounds: int, bootstrap: str, ledger: str) -> None:
    """One ledger round after another: aiokafka's ``end_offsets()`` against ``EndOffsets``."""
    settings = Settings(kafka={"bootstrap_servers": bootstrap, "create_topics": True})
    await ensure_topics(settings, [ledger])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, ledger)
        prepared = EndOffsets(consumer, partitions)
        fetchers: dict[str, Callable[[], Awaitable[object]]] = {
            "AIOKafkaConsumer.end_offsets": lambda: consumer.end_offsets(partitions),
            "EndOffsets.fetch": prepared.fetch,
        }
        for name, fetch in fetchers.items():

            async def run(total: int, fetch: Callable[[], Awaitable[object]] = fetch) -> None:
                for _ in range(total):
                    await fetch()

            await _measure(name, f"round of {len(partitions)} partitions", rounds, run)
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["handler", "connection", "publisher", "end-offsets"])
    parser.add_argument("--outbound", action="store_true")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="bench.cpu")
    parser.add_argument("--ledger", default="bench.cpu-ledger")
    args = parser.parse_args()
    forbid_topic_auto_creation()  # as the bridge's own start-up does
    read_any_header_name()
    if args.what == "handler":
        asyncio.run(handler(args.requests, args.outbound, args.bootstrap, args.ledger))
    elif args.what == "connection":
        asyncio.run(connection(args.requests))
    elif args.what == "publisher":
        asyncio.run(publisher(args.records, args.bootstrap, args.topic))
    else:
        asyncio.run(end_offsets(args.rounds, args.bootstrap, args.ledger))


if __name__ == "__main__":
    main()
