"""When tracing is on (the OTEL_* variables only), where a record's trace context is read, and
what a request's span takes from the request."""

from __future__ import annotations

import random

import pytest
from aiokafka.structs import ConsumerRecord
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bridge.obs import http_spans, tracing
from bridge.obs.sdk_parts import from_env
from bridge.obs.span_scopes import record_headers, w3c_propagators
from bridge.obs.trace_context import (
    Incoming,
    incoming,
    parse_traceparent,
    sampled_root,
    server_attributes,
    span_name,
    unsampled_traceparent,
)

TRACE, SPAN = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
PARENT = f"00-{TRACE:032x}-{SPAN:016x}-01"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
    ],
)
def test_tracing_is_on_only_when_otel_variables_ask(environ: dict[str, str], on: bool) -> None:
    assert tracing.configured(environ) is on


def _record(headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t", partition=0, offset=0, timestamp=0, timestamp_type=0, key=b"k", value=b"v",
        checksum=None, serialized_key_size=1, serialized_value_size=1, headers=headers,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], None),
        ([("traceparent", PARENT.encode())], PARENT),
        ([("ce_traceparent", PARENT.encode())], PARENT),  # CloudEvents binary mode
        ([("ce_traceparent", b"00-other"), ("traceparent", PARENT.encode())], PARENT),
        ([("traceparent", b"")], None),
    ],
)
def test_a_command_record_names_its_trace_by_either_header(
    headers: list[tuple[str, bytes]], expected: str | None
) -> None:
    assert tracing.record_traceparent(_record(headers)) == expected


def test_nothing_is_traced_while_off() -> None:
    assert not tracing.enabled()
    assert http_spans.server_middlewares() == []
    assert http_spans.client_trace_configs() == []
    headers: list[tuple[str, bytes]] = []
    with tracing.producing("t", headers) as span:
        tracing.produced(span, 0, 1)
    assert span is None
    assert headers == []
    tracing.annotate(**{"fonestorm_bridge.call_id": "c"})  # no span, no error
    tracing.link_current_span(PARENT)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (PARENT, (TRACE, SPAN, 1)),
        (f" {PARENT} ", (TRACE, SPAN, 1)),
        (f"00-{TRACE:032x}-{SPAN:016x}-00", (TRACE, SPAN, 0)),
        (f"01-{TRACE:032x}-{SPAN:016x}-01-later-fields", (TRACE, SPAN, 1)),  # a later version
        (f"00-{TRACE:032x}-{SPAN:016x}-01-more", None),  # version 00 has exactly four
        (f"ff-{TRACE:032x}-{SPAN:016x}-01", None),
        (f"00-{0:032x}-{SPAN:016x}-01", None),
        (f"00-{TRACE:032x}-{0:016x}-01", None),
        (f"00-{TRACE:032X}-{SPAN:016x}-01", None),  # upper case is not W3C
        (f"00-{TRACE:031x}-{SPAN:016x}-01", None),
        (f"00-{TRACE:032x}-{SPAN:016x}", None),
        ("garbage", None),
    ],
)
def test_a_traceparent_is_taken_only_as_w3c_writes_it(
    value: str | None, expected: tuple[int, int, int] | None
) -> None:
    assert parse_traceparent(value) == expected


SAMPLED, UNSAMPLED = TraceFlags(1), TraceFlags(0)


@pytest.mark.parametrize(
    ("traceparent", "tracestate", "trusted", "expected"),
    [
        # What FoneStorm sends: nothing to link to, nothing to join.
        (None, None, False, Incoming()),
        (None, "a=1", True, Incoming()),
        ("not-a-traceparent", "a=1", True, Incoming()),
        # A stranger's context: a link only (neither its flags nor its tracestate count).
        (PARENT, "a=1", False, Incoming(link=SpanContext(TRACE, SPAN, is_remote=True))),
        # A trusted ingress's: joined, with its sampling decision and tracestate.
        (PARENT, "a=1,b=2", True, Incoming(parent=SpanContext(
            TRACE, SPAN, is_remote=True, trace_flags=SAMPLED,
            trace_state=TraceState([("a", "1"), ("b", "2")])))),
        (PARENT.replace("-01", "-00"), None, True, Incoming(parent=SpanContext(
            TRACE, SPAN, is_remote=True, trace_flags=UNSAMPLED, trace_state=TraceState()))),
        # A malformed tracestate is dropped whole, the trace still joined.
        (PARENT, "not a list member", True, Incoming(parent=SpanContext(
            TRACE, SPAN, is_remote=True, trace_flags=SAMPLED, trace_state=TraceState()))),
    ],
)  # fmt: skip
def test_a_request_joins_the_trace_it_names_only_when_trusted(
    traceparent: str | None, tracestate: str | None, trusted: bool, expected: Incoming
) -> None:
    found = incoming(traceparent, tracestate, trusted=trusted)
    assert found == expected
    for mine, theirs in ((found.parent, expected.parent), (found.link, expected.link)):
        if mine is not None and theirs is not None:
            assert mine.trace_flags == theirs.trace_flags
            assert mine.trace_state == theirs.trace_state


@pytest.mark.parametrize(
    ("method", "route", "name", "attributes"),
    [
        ("GET", "/callbacks/calls", "GET /callbacks/calls",
         {"http.request.method": "GET", "http.route": "/callbacks/calls"}),
        ("POST", "/v2/calls", "POST /v2/calls",
         {"http.request.method": "POST", "http.route": "/v2/calls"}),
        ("BREW", "/callbacks/calls", "_OTHER /callbacks/calls",
         {"http.request.method": "_OTHER", "http.route": "/callbacks/calls"}),
        ("GET", "", "GET", {"http.request.method": "GET", "http.route": ""}),
    ],
)  # fmt: skip
def test_a_server_span_names_the_route_never_the_query(
    method: str, route: str, name: str, attributes: dict[str, str]
) -> None:
    assert span_name(method, route) == name
    assert server_attributes(method, route) == attributes


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_TRACES_SAMPLER": "always_on"},
        {"OTEL_TRACES_SAMPLER": "always_off"},
        {"OTEL_TRACES_SAMPLER": "parentbased_always_off"},
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
        {"OTEL_TRACES_SAMPLER": "TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "not a number"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},  # refused
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"},  # no ratio
    ],
)
def test_a_root_span_is_sampled_as_the_sdk_would_sample_it(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    sdk = TracerProvider().sampler  # what the SDK makes of the same variables
    sampler, bound = from_env(environ)
    assert sampler is not None
    assert bound is not None
    assert sampler.get_description() == sdk.get_description()
    rng = random.Random(7)
    for _ in range(2000):
        trace_id = rng.getrandbits(128) or 1
        decision = sdk.should_sample(None, trace_id, "POST /callbacks/calls").decision
        assert sampled_root(trace_id, bound) is decision.is_sampled(), hex(trace_id)


def test_a_sampler_the_sdk_does_not_know_is_left_to_it() -> None:
    assert from_env({"OTEL_TRACES_SAMPLER": "jaeger_remote"}) == (None, None)


@pytest.mark.parametrize(
    ("trace_id", "span_id", "expected"),
    [
        (TRACE, SPAN, f"00-{TRACE:032x}-{SPAN:016x}-02".encode()),
        (1, 1, b"00-00000000000000000000000000000001-0000000000000001-02"),
    ],
)
def test_a_sampled_out_callback_s_records_say_so(
    trace_id: int, span_id: int, expected: bytes
) -> None:
    assert unsampled_traceparent(trace_id, span_id) == expected
    parsed = parse_traceparent(expected.decode())
    assert parsed is not None
    assert parsed[2] & 1 == 0  # not sampled


@pytest.mark.parametrize(
    ("environ", "w3c"),
    [
        ({}, True),
        ({"OTEL_PROPAGATORS": "tracecontext"}, True),
        ({"OTEL_PROPAGATORS": "tracecontext, baggage"}, True),
        ({"OTEL_PROPAGATORS": "baggage"}, False),
        ({"OTEL_PROPAGATORS": "tracecontext,b3"}, False),
        ({"OTEL_PROPAGATORS": "none"}, False),
    ],
)
def test_records_get_w3c_headers_directly_only_when_w3c_is_all_that_is_asked(
    environ: dict[str, str], w3c: bool
) -> None:
    assert w3c_propagators(environ) is w3c


@pytest.mark.parametrize(
    "span_context",
    [
        SpanContext(TRACE, SPAN, is_remote=False, trace_flags=TraceFlags(0x03)),
        SpanContext(TRACE, SPAN, is_remote=False, trace_flags=TraceFlags(0x02)),
        SpanContext(TRACE, SPAN, is_remote=False, trace_flags=TraceFlags(0x01),
                    trace_state=TraceState([("ingress", "a1"), ("other", "b2")])),
    ],
)  # fmt: skip
def test_a_record_carries_what_the_w3c_propagator_writes_and_ce_traceparent(
    span_context: SpanContext,
) -> None:
    official: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(
        official, context=trace.set_span_in_context(trace.NonRecordingSpan(span_context))
    )
    headers = dict(record_headers(span_context, w3c_only=True))
    assert headers == {
        **{name: value.encode() for name, value in official.items()},
        "ce_traceparent": official["traceparent"].encode(),
    }
    assert dict(record_headers(span_context, w3c_only=False)) == headers
