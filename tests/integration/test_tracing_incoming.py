"""What a callback's sender can make of the bridge's traces, over real HTTP and a real broker.

Spans are kept by the SDK's in-memory exporter; what reached Kafka is read back. A sender sends
W3C context (``traceparent``, ``tracestate``) and baggage of its choosing: by default its
callback starts a trace of its own that only links to that context, and nothing of it rides
on the records; an operator may trust it (an ingress that starts traces), and then the trace
is joined (its baggage still left behind). Spans never carry the query string or a phone number.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.parse

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bridge.obs import tracing
from tests.support.bridge_app import BridgeFactory, RunningBridge
from tests.support.callbacks import callback, get_query
from tests.support.kafka_records import Record, consume_all, headers_of

pytestmark = pytest.mark.integration

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
# Sampled: a sender wanting its callbacks recorded (forced sampling, when adopted).
INCOMING = {
    "traceparent": f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01",
    "tracestate": "sender=chosen-by-the-sender",
    # 8 KB of baggage: what the sender would have every downstream service receive.
    "baggage": "tenant=someone-else," + ",".join(f"k{i}={'v' * 60}" for i in range(120)),
}
NUMBERS = ("3215551081", "3215551801")  # the from and to of tests.integration callbacks


async def _post(
    bridge: RunningBridge, headers: dict[str, str], method: str = "JSON", expect: int = 200
) -> tuple[dict[str, str], Record | None]:
    """Send one callback with ``headers``; its data and the record it became (if accepted).

    Over the standard library's HTTP client: no tracing instrumentation can touch the headers.
    """
    data = callback("INBOUND", "BEGIN")
    url = urllib.parse.urlsplit(bridge.callback_url)

    def request() -> int:
        connection = http.client.HTTPConnection(url.netloc, timeout=10)
        try:
            if method == "GET":
                connection.request("GET", f"{url.path}?{get_query(data)}", headers=headers)
            else:
                body = json.dumps(data).encode()
                content = {"Content-Type": "application/json"}
                connection.request("POST", url.path, body=body, headers=headers | content)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    assert await asyncio.to_thread(request) == expect
    if expect != 200:
        return data, None
    settings = bridge.settings
    (record,) = await consume_all(
        settings.kafka.bootstrap_servers, settings.topics.call_events, expected=1
    )
    return data, record


def _record_trace(record: Record | None) -> tuple[int, int]:
    """(trace id, parent span id) of a record's ``traceparent``."""
    assert record is not None
    _, trace_id, span_id, _ = headers_of(record)["traceparent"].split("-")
    return int(trace_id, 16), int(span_id, 16)


def _server_span(spans: InMemorySpanExporter) -> ReadableSpan:
    """The one SERVER span."""
    (server,) = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    return server


async def test_a_callback_starts_its_own_trace_linked_to_the_one_it_names(
    start_bridge: BridgeFactory, spans: InMemorySpanExporter
) -> None:
    bridge = await start_bridge()
    _, record = await _post(bridge, INCOMING)

    trace_id, _ = _record_trace(record)
    assert trace_id != TRACE_ID
    assert record is not None
    headers = headers_of(record)
    # Nothing the sender chose rides on the record: no baggage, not its tracestate.
    assert "baggage" not in headers
    assert "tracestate" not in headers
    assert not any("someone-else" in v or "chosen-by" in v for v in headers.values())
    assert headers["ce_traceparent"] == headers["traceparent"]

    server = _server_span(spans)
    assert server.context is not None
    # The record carries the callback's own span (it covers the send).
    assert (server.context.trace_id, server.context.span_id) == _record_trace(record)
    assert server.parent is None
    assert not server.context.trace_state
    (link,) = server.links
    assert (link.context.trace_id, link.context.span_id) == (TRACE_ID, SPAN_ID)
    assert dict(link.attributes or {}) == {"fonestorm_bridge.link": "incoming"}


async def test_only_a_trusted_sender_s_callback_joins_the_trace_it_names(
    start_bridge: BridgeFactory, spans: InMemorySpanExporter
) -> None:
    default = await start_bridge()
    trusting = await start_bridge(tracing={"trust_incoming_context": True})
    _, joined = await _post(trusting, INCOMING)
    _, own = await _post(default, INCOMING)

    assert _record_trace(joined)[0] == TRACE_ID
    assert _record_trace(own)[0] != TRACE_ID
    assert joined is not None
    headers = headers_of(joined)
    assert headers["tracestate"] == INCOMING["tracestate"]
    assert "baggage" not in headers
    (server,) = [s for s in spans.get_finished_spans()
                 if s.kind is trace.SpanKind.SERVER and s.parent is not None]  # fmt: skip
    assert server.context is not None
    assert server.context.trace_id == TRACE_ID
    assert server.parent is not None
    assert server.parent.span_id == SPAN_ID
    assert not server.links


async def test_a_refused_callback_makes_no_span(
    start_bridge: BridgeFactory, spans: InMemorySpanExporter
) -> None:
    bridge = await start_bridge(
        callbacks={"allow_unauthenticated": False, "username": "fs", "password": "secret"},
        tracing={"trust_incoming_context": True},
    )
    await _post(bridge, INCOMING, expect=401)
    assert spans.get_finished_spans() == ()


@pytest.mark.parametrize("method", ["GET", "JSON"])
async def test_spans_carry_no_query_and_no_phone_number(
    start_bridge: BridgeFactory, spans: InMemorySpanExporter, method: str
) -> None:
    bridge = await start_bridge()
    data, _ = await _post(bridge, {}, method)

    finished = spans.get_finished_spans()
    (server,) = [s for s in finished if s.name.endswith(" /callbacks/calls")]
    assert server.context is not None
    callback_trace = [s for s in finished if s.context and s.context == server.context]
    callback_trace += [s for s in finished if s.parent and s.parent == server.context]
    for span in callback_trace:
        attributes = dict(span.attributes or {})
        for key in ("url.query", "http.target", "http.url", "url.full", "url.path"):
            assert key not in attributes, (span.name, key, attributes[key])
    for span in finished:
        attributes = dict(span.attributes or {})
        texts = [span.name, *attributes, *(str(v) for v in attributes.values())]
        texts += [str(e.attributes) for e in span.events]
        for text in texts:
            assert not any(number in text for number in NUMBERS), (span.name, text)
            assert "ACC77" not in text, (span.name, text)
            assert not any(f"{name}=" in text for name in ("from", "to")), (span.name, text)
    assert [s.kind for s in finished] == [trace.SpanKind.SERVER]
    assert server.name == f"{method.replace('JSON', 'POST')} /callbacks/calls"
    assert (server.attributes or {})["fonestorm_bridge.call_id"] == data["uid"]
    assert (server.attributes or {})["http.response.status_code"] == 200


@pytest.mark.parametrize(
    ("sampler", "flags", "recorded"),
    [
        # Nothing sampled, and a sender asking for its callback to be: not recorded.
        ("parentbased_always_off", "01", False),
        ("parentbased_traceidratio", "01", False),  # OTEL_TRACES_SAMPLER_ARG=0
        # Everything sampled, and a sender asking not to be: recorded all the same.
        ("parentbased_always_on", "00", True),
    ],
)
async def test_a_sender_neither_forces_sampling_nor_hides_from_it(
    start_bridge: BridgeFactory,
    monkeypatch: pytest.MonkeyPatch,
    sampler: str,
    flags: str,
    recorded: bool,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    exporter = InMemorySpanExporter()
    tracing.setup(exporter)
    try:
        bridge = await start_bridge()
        asked = {"traceparent": f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-{flags}"}
        _, record = await _post(bridge, asked)
    finally:
        tracing.shutdown()

    assert bool(exporter.get_finished_spans()) is recorded
    assert record is not None
    headers = headers_of(record)
    _, trace_id, _, record_flags = headers["traceparent"].split("-")
    assert int(trace_id, 16) != TRACE_ID
    assert int(record_flags, 16) & 1 == recorded  # downstream learns the bridge's decision
    assert headers["ce_traceparent"] == headers["traceparent"]
    if recorded:
        (server,) = exporter.get_finished_spans()
        assert server.context is not None
        assert f"{server.context.trace_id:032x}" == trace_id
