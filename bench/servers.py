"""The two baselines the bridge receiver is compared with (run as ``python bench/servers.py``).

* ``bare``: an aiohttp handler that reads the body and answers 204 — the HTTP limit of the
  stack (same aiohttp, same event loop, same ``run_app`` options as the bridge).
* ``otlp-sink``: accepts OTLP/HTTP trace exports and drops them (tracing's cost in the bench).
* ``naive``: what a user would write in an afternoon: decode the callback (query, form or JSON),
  ``json.dumps`` it and ``await producer.send_and_wait(...)`` with ``acks="all"``, answer 200.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator

from aiohttp import web
from aiokafka import AIOKafkaProducer

PRODUCER = web.AppKey("producer", AIOKafkaProducer)
TOPIC = web.AppKey("topic", str)


async def bare(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


async def naive(request: web.Request) -> web.Response:
    if request.method == "GET":
        data = dict(request.query)
    elif request.content_type == "application/json":
        data = await request.json()
    else:
        data = dict(await request.post())
    await request.app[PRODUCER].send_and_wait(
        request.app[TOPIC], json.dumps(data).encode(), key=str(data.get("uid", "")).encode()
    )
    return web.json_response({"ok": True})


async def otlp_sink(request: web.Request) -> web.Response:
    """An OTLP/HTTP trace receiver that keeps nothing: what exporting spans costs the sender."""
    await request.read()
    # An empty ExportTraceServiceResponse: full success.
    return web.Response(body=b"", content_type="application/x-protobuf")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["bare", "naive", "otlp-sink"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="bench.naive")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/callbacks/calls", bare if args.kind == "bare" else naive)
    app.router.add_post("/v1/traces", otlp_sink)
    if args.kind == "naive":
        app[TOPIC] = args.topic

        async def producer_ctx(app: web.Application) -> AsyncIterator[None]:
            producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
            await producer.start()
            app[PRODUCER] = producer
            yield
            await producer.stop()

        app.cleanup_ctx.append(producer_ctx)
    web.run_app(
        app, host="127.0.0.1", port=args.port, access_log=None, print=None, keepalive_timeout=75
    )


if __name__ == "__main__":
    main()
