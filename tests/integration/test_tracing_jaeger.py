"""The bridge's traces in a real Jaeger, exported over OTLP/HTTP as the OTEL_* variables say.

A command produced inside an upstream span must show in Jaeger as one trace: the upstream
producer, the worker's processing, the create-call request (and FoneStorm's side of it), the
ledger writes and the result; the BEGIN/END callbacks are traces of their own that refer to it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate

from bridge.obs import tracing
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import closed_loop, command
from tests.support.jaeger import WITH_BUILD_TIMEOUT, Jaeger

pytestmark = pytest.mark.integration


@pytest.fixture
def traced(jaeger: Jaeger, monkeypatch: pytest.MonkeyPatch) -> Iterator[Jaeger]:
    """Tracing on, configured only through the standard variables."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "fonestorm-bridge-test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    assert tracing.setup() is True
    yield jaeger
    tracing.shutdown()


def _by_id(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {span["spanID"]: span for span in trace["spans"]}


def _parent(span: dict[str, Any]) -> str | None:
    return next((r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"), None)


def _ancestors(span: dict[str, Any], spans: dict[str, dict[str, Any]]) -> list[str]:
    names = []
    while (parent := _parent(span)) is not None and parent in spans:
        span = spans[parent]
        names.append(span["operationName"])
    return names


def _tag(span: dict[str, Any], key: str) -> Any:
    return next((t["value"] for t in span["tags"] if t["key"] == key), None)


@pytest.mark.timeout(WITH_BUILD_TIMEOUT)
async def test_jaeger_shows_the_command_as_one_trace_and_callbacks_referring_to_it(
    start_bridge: BridgeFactory, traced: Jaeger
) -> None:
    async with closed_loop(start_bridge) as loop:
        topics = loop.settings.topics
        cmd = command(f"jaeger-{uuid.uuid4()}", correlation_id="appointment-17")
        producer = AIOKafkaProducer(bootstrap_servers=loop.settings.kafka.bootstrap_servers)
        await producer.start()
        try:
            with tracing.tracer().start_as_current_span("appointment reminder") as upstream:
                carrier: dict[str, str] = {}
                propagate.inject(carrier)  # as a traced upstream service does
                await producer.send_and_wait(
                    topics.place_call,
                    cmd.model_dump_json().encode(),
                    key=cmd.command_id.encode(),
                    headers=[(name, value.encode()) for name, value in carrier.items()],
                )
        finally:
            await producer.stop()
        (result,) = await loop.results(1)
        await loop.events(3)
    tracing.shutdown()  # flush every span to Jaeger now
    trace_id = f"{upstream.get_span_context().trace_id:032x}"

    trace = await asyncio.to_thread(traced.trace, trace_id)
    spans = _by_id(trace)
    names = {span["operationName"] for span in spans.values()}
    process = next(
        s for s in spans.values() if s["operationName"] == f"{topics.place_call} process"
    )
    assert _tag(process, "fonestorm_bridge.command_id") == cmd.command_id
    assert _ancestors(process, spans)[-1] == "appointment reminder"
    # Inside the processing: the ledger, the create-call request, the result, CallPlaced.
    for name in (f"{topics.command_ledger} send", f"{topics.place_call_results} send",
                 f"{topics.call_events} send", "POST"):  # fmt: skip
        found = [s for s in spans.values() if s["operationName"] == name]
        assert found, (name, sorted(names))
        assert any(f"{topics.place_call} process" in _ancestors(s, spans) for s in found), name
    # FoneStorm's side of the create-call joined the trace (traceparent sent).
    assert any("/v2/calls" in n for n in names if n.startswith("POST /")), sorted(names)
    services = {p["serviceName"] for p in trace["processes"].values()}
    assert services == {"fonestorm-bridge-test"}

    # The callbacks: their own traces, each referring to the command's.
    found = await asyncio.to_thread(
        traced.get,
        "/api/traces?service=fonestorm-bridge-test&operation="
        "POST%20%2Fcallbacks%2Fcalls&limit=50&lookback=1h",
    )
    referring = [
        t
        for t in found["data"]
        if any(
            ref["traceID"] == trace_id and ref["refType"] == "FOLLOWS_FROM"
            for span in t["spans"]
            for ref in span["references"]
        )
    ]
    assert len(referring) == 2, [t["traceID"] for t in found["data"]]
    for callback_trace in referring:
        assert callback_trace["traceID"] != trace_id
        server = next(
            s for s in callback_trace["spans"] if s["operationName"] == "POST /callbacks/calls"
        )
        assert _tag(server, "fonestorm_bridge.call_id") == result["call_id"]
        # Its record carries its context: no send span of its own.
        assert [s["operationName"] for s in callback_trace["spans"]] == ["POST /callbacks/calls"]

    # Nothing else: the bridge's own reads of Kafka (ledger, correlation) make no traces. The
    # sandbox's spans of the callback registrations, FoneStorm's side, aside.
    everything = await asyncio.to_thread(
        traced.get, "/api/traces?service=fonestorm-bridge-test&limit=1000&lookback=1h"
    )
    traces = {
        t["traceID"]
        for t in everything["data"]
        if not all(s["operationName"].endswith("_notify") for s in t["spans"])
    }
    assert traces == {trace_id, *(t["traceID"] for t in referring)}, sorted(
        {s["operationName"] for t in everything["data"] for s in t["spans"]}
    )
