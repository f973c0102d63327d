"""Tracing on a real broker, sandbox and bridge, spans kept by the SDK's in-memory exporter.

One command, produced inside an upstream span: its trace must hold the worker's processing, the
ledger writes, the create-call request (and FoneStorm's side of it), the result and CallPlaced;
the BEGIN/END callbacks arrive without a trace (as from FoneStorm) and their spans link to it.
"""

from __future__ import annotations

import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bridge.contracts.commands import PlaceCallCommand
from bridge.obs import tracing
from tests.support.bridge_app import BridgeFactory
from tests.support.commands import closed_loop, command
from tests.support.kafka_records import consume_all, headers_of

pytestmark = pytest.mark.integration


def _trace_id(traceparent: str) -> int:
    return int(traceparent.split("-")[1], 16)


def _mentions(span: ReadableSpan, text: str) -> bool:
    """Whether an attribute (url.full or http.url, url.path or http.target: either convention)
    mentions ``text``."""
    return any(text in str(value) for value in (span.attributes or {}).values())


def _in(trace_id: int, spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


async def _send_traced(bootstrap: str, topic: str, cmd: PlaceCallCommand) -> None:
    """Produce ``cmd`` as a traced upstream service does: the current context as headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            cmd.model_dump_json().encode(),
            key=cmd.command_id.encode(),
            headers=[(name, value.encode()) for name, value in carrier.items()],
        )
    finally:
        await producer.stop()


@pytest.mark.timeout(60)
async def test_one_trace_from_command_to_create_call_to_result_and_linked_call_events(
    start_bridge: BridgeFactory, spans: InMemorySpanExporter
) -> None:
    async with closed_loop(start_bridge) as loop:
        settings = loop.settings
        cmd = command(f"traced-{uuid.uuid4()}", correlation_id="appointment-17")
        with tracing.tracer().start_as_current_span("upstream service") as upstream:
            await _send_traced(settings.kafka.bootstrap_servers, settings.topics.place_call, cmd)
        trace_id = upstream.get_span_context().trace_id
        (result,) = await loop.results(1)
        assert result["status"] == "placed"
        events = await loop.events(3)
        bootstrap = settings.kafka.bootstrap_servers
        (result_record,) = await consume_all(
            bootstrap, settings.topics.place_call_results, expected=1
        )

    # The result record carries the command's trace, in both header forms.
    result_headers = headers_of(result_record)
    assert _trace_id(result_headers["traceparent"]) == trace_id
    assert result_headers["ce_traceparent"] == result_headers["traceparent"]

    finished = spans.get_finished_spans()
    command_trace = _in(trace_id, finished)
    names = [(s.name, s.kind) for s in command_trace]
    topics = settings.topics
    assert (f"{topics.place_call} process", trace.SpanKind.CONSUMER) in names
    for topic in (topics.command_ledger, topics.place_call_results, topics.call_events):
        assert (f"{topic} send", trace.SpanKind.PRODUCER) in names, (topic, names)
    clients = [s for s in command_trace if s.kind is trace.SpanKind.CLIENT]
    assert any(_mentions(s, "/v2/calls") for s in clients), [s.attributes for s in clients]
    # FoneStorm's side (the sandbox, instrumented in this process) continued the trace: the
    # create-call request carried traceparent.
    servers = [s for s in command_trace if s.kind is trace.SpanKind.SERVER]
    assert any(_mentions(s, "/v2/calls") for s in servers), [s.attributes for s in servers]
    process = next(s for s in command_trace if s.name.endswith(" process"))
    assert (process.attributes or {})["fonestorm_bridge.command_id"] == cmd.command_id

    # BEGIN and END came as FoneStorm sends them: no trace of their own to continue, so each
    # callback is its own trace, linked to the command's; their records carry that trace.
    calls = [r for r in events if b'"status"' in r.value]
    assert len(calls) == 2
    callback_spans = [
        s for s in finished if s.kind is trace.SpanKind.SERVER and _mentions(s, "/callbacks/calls")
    ]
    assert len(callback_spans) == 2
    for span in callback_spans:
        assert span.context is not None
        assert span.context.trace_id != trace_id
        assert [link.context.trace_id for link in span.links] == [trace_id]
        assert (span.attributes or {})["fonestorm_bridge.call_id"] == result["call_id"]
    for record in calls:
        event = json.loads(record.value)
        assert event["command_id"] == cmd.command_id
        parent = headers_of(record)["traceparent"]
        assert _trace_id(parent) in {s.context.trace_id for s in callback_spans if s.context}


@pytest.mark.timeout(60)
async def test_one_command_is_one_trace_and_each_callback_one_more(
    start_bridge: BridgeFactory, spans: InMemorySpanExporter
) -> None:
    async with closed_loop(start_bridge) as loop:
        cmd = command(f"untraced-upstream-{uuid.uuid4()}")
        await loop.send(cmd)
        await loop.results(1)
        events = [json.loads(r.value) for r in await loop.events(3)]
    # The receiver tagged BEGIN and END: its correlation follower had read the ledger (as the
    # worker's ledger follower had, to place the call).
    assert [e.get("command_id") for e in events] == [cmd.command_id] * 3

    finished = spans.get_finished_spans()
    # The ledger and correlation followers (and the command poll) make no spans of their own.
    assert not [s.name for s in finished if s.name.endswith(" receive")]
    consumers = [s for s in finished if s.kind is trace.SpanKind.CONSUMER]
    assert [s.name for s in consumers] == [f"{loop.settings.topics.place_call} process"]
    command_trace = consumers[0].context.trace_id if consumers[0].context else None
    callbacks = {s.context.trace_id for s in finished
                 if s.kind is trace.SpanKind.SERVER and s.name.endswith("/callbacks/calls")
                 and s.context}  # fmt: skip
    assert len(callbacks) == 2
    # The sandbox's spans of the callback registrations aside (FoneStorm's side, in-process).
    others = [(s.name, s.kind) for s in finished
              if s.context and s.context.trace_id not in {command_trace, *callbacks}
              and not s.name.endswith("_notify")]  # fmt: skip
    assert not others


async def test_tracing_is_off_without_otel_variables(
    start_bridge: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert tracing.setup() is False
    assert not tracing.enabled()
    async with closed_loop(start_bridge) as loop:
        await loop.send(command(f"untraced-{uuid.uuid4()}"))
        (record,) = await consume_all(
            loop.settings.kafka.bootstrap_servers,
            loop.settings.topics.place_call_results,
            expected=1,
        )
    assert "traceparent" not in headers_of(record)
