"""OpenTelemetry tracing, configured only by the standard ``OTEL_*`` environment variables.

Off unless an exporter is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER`` other than ``none``), and
``OTEL_SDK_DISABLED=true`` always wins: by default the SDK is not even imported, and every
function here returns at once. When on, the bridge makes its spans itself, where it knows
what they are about; nothing is patched globally:

* a SERVER span per callback (:mod:`http_spans`), started once the sender passed the source
  and credential checks; a new trace linked to the context the request brought
  (:mod:`trace_context`); the records it writes carry its context;
* elsewhere a PRODUCER span per record the bridge writes (:func:`producing`); a record's
  context goes as the ``traceparent`` header and as ``ce_traceparent`` (the CloudEvents
  distributed-tracing extension in binary mode);
* a CONSUMER "process" span per command (:func:`processing`), continuing the ``traceparent``
  the upstream producer put on the command record, so the ledger writes, the create-call
  request (a CLIENT span, :func:`http_spans.client_trace_configs`), the result and
  ``CallPlaced`` are one trace; the receiver links each ``BEGIN``/``END`` event's span to that
  trace.

The bridge's own reads of Kafka (the ledger and correlation followers, the command poll) make
no spans: they would be a trace per fetched batch. Spans carry no query string and no phone
number. Nothing is built for a trace that is not sampled: a sampled-out callback only draws
the ids its records carry (:mod:`sdk_parts`), and under a sampled-out parent no child span
is made, the record carrying the parent's context, whose flags tell downstream not to record.

This module sets tracing up and makes the Kafka spans; :mod:`http_spans` makes the HTTP ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace

from bridge.obs import span_scopes
from bridge.obs.span_scopes import (
    CE_TRACEPARENT,
    NO_SPAN,
    Current,
    Ended,
    record_headers,
    w3c_propagators,
)
from bridge.obs.trace_context import TRACEPARENT, parse_traceparent

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from bridge.obs.sdk_parts import ChosenIds

log = logging.getLogger(__name__)

SERVICE = "fonestorm-bridge"
_SCOPE = "fonestorm-bridge"
#: The attribute naming why a span links to another trace.
LINK_KIND = "fonestorm_bridge.link"
_NO_TRACER = trace.NoOpTracer()


@dataclass(frozen=True, slots=True)
class Active:
    """What :func:`setup` built, read by every span maker (here and :mod:`http_spans`)."""

    provider: TracerProvider
    tracer: trace.Tracer
    ids: ChosenIds
    #: A root span's trace id is sampled below this bound (None: not a standard sampler).
    root_bound: int | None
    #: The propagators are W3C trace context (and baggage) only: headers written directly.
    w3c_only: bool


#: Tracing as set up in this process; None while it is off. Read it as ``tracing.active``
#: at each use: :func:`setup` and :func:`shutdown` replace it.
active: Active | None = None


def configured(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def enabled() -> bool:
    """Whether tracing was set up in this process."""
    return active is not None


def setup(exporter: SpanExporter | None = None, *, service: str = SERVICE) -> bool:
    """Turn tracing on when ``OTEL_*`` asks for it (or ``exporter`` is given: tests).

    ``service`` names the process when ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
    do not. Returns whether tracing is on. Call before the application and its clients are
    built. The sampler is the SDK's, from ``OTEL_TRACES_SAMPLER``.
    """
    global active  # noqa: PLW0603 - one per process
    if active is not None:
        return True
    if exporter is None and not configured():
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    from bridge.obs import sdk_parts

    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; only when they
    # name no service is it ours rather than the SDK's "unknown_service".
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service}))
    ids = sdk_parts.ChosenIds()
    sampler, root_bound = sdk_parts.from_env()
    provider = TracerProvider(
        sampler=sampler, resource=sdk_parts.FrozenResource(resource), id_generator=ids
    )
    if exporter is None:
        provider.add_span_processor(BatchSpanProcessor(_exporter_from_env()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    active = Active(provider, provider.get_tracer(_SCOPE), ids, root_bound, w3c_propagators())
    log.info("tracing on: spans exported as the OTEL_* environment variables say")
    return True


def shutdown() -> None:
    """Flush spans and turn tracing off (end of process, or of a test)."""
    global active
    if active is None:
        return
    provider, active = active.provider, None
    provider.shutdown()


def _exporter_from_env() -> SpanExporter:
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported; using otlp", name)
    # OTLP over HTTP/protobuf; endpoint, headers, timeout and TLS from OTEL_EXPORTER_OTLP_*.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


# ------------------------------------------------------------------------------ Kafka


def producing(
    topic: str, headers: list[tuple[str, bytes]]
) -> contextlib.AbstractContextManager[trace.Span | None]:
    """A PRODUCER span for one record's send (around it), its context added to ``headers``.

    Yields None when no span is made: tracing off; inside a callback (the record carries the
    callback's context: :func:`server_span`); or the current trace not sampled (the record
    carries the current context, "not sampled" and all).
    """
    on = active
    if on is None:
        return NO_SPAN
    carried = span_scopes.carried()
    if carried is not None:
        headers += carried
        return NO_SPAN
    current = trace.get_current_span().get_span_context()
    if current.is_valid and not current.trace_flags.sampled:
        headers += record_headers(current, w3c_only=on.w3c_only)
        return NO_SPAN
    # Few attributes: each costs a sampled span a few microseconds to set and as many to
    # export. The record's key is the id already on the span of the callback or command.
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.name": "send",
        "messaging.destination.name": topic,
    }
    span = on.tracer.start_span(
        f"{topic} send", kind=trace.SpanKind.PRODUCER, attributes=attributes
    )
    headers += record_headers(span.get_span_context(), w3c_only=on.w3c_only)
    return Ended(span)


def produced(span: trace.Span | None, partition: int, offset: int) -> None:
    """Record where the broker put the record of a :func:`producing` span."""
    if span is not None and span.is_recording():
        span.set_attributes(
            {
                "messaging.destination.partition.id": str(partition),
                "messaging.kafka.offset": offset,
            }
        )


def _header(headers: Sequence[tuple[str, bytes]], *names: str) -> str | None:
    for wanted in names:
        for name, value in headers:
            if name == wanted and value:
                return value.decode("ascii", "replace")
    return None


def record_traceparent(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The ``traceparent`` a record carries (plain header first, then CloudEvents')."""
    return _header(record.headers or (), TRACEPARENT, CE_TRACEPARENT)


def processing(
    record: ConsumerRecord[bytes, bytes], group: str
) -> contextlib.AbstractContextManager[trace.Span | None]:
    """A CONSUMER "process" span for one command record, continuing its producer's trace."""
    on = active
    if on is None:
        return NO_SPAN
    parent = otel_context.Context()
    parsed = parse_traceparent(record_traceparent(record))
    if parsed is not None:
        trace_id, span_id, flags = parsed
        upstream = trace.SpanContext(
            trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags)
        )
        parent = trace.set_span_in_context(trace.NonRecordingSpan(upstream), parent)
    span = on.tracer.start_span(f"{record.topic} process", parent, trace.SpanKind.CONSUMER)
    if span.is_recording():
        span.set_attributes(
            {
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": group,
                **({"messaging.kafka.message.key": record.key.decode(errors="replace")}
                   if record.key is not None else {}),
            }
        )  # fmt: skip
    return Current(span)


# ------------------------------------------------------------------------------ any span


def annotate(**attributes: str) -> None:
    """Set attributes (e.g. the command id) on the current span; nothing when tracing is off."""
    if active is not None and not span_scopes.sampled_out():
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(attributes)


def link_current_span(traceparent: str | None) -> None:
    """Link the current span to the trace ``traceparent`` names (a callback to its command)."""
    if active is None or not traceparent or span_scopes.sampled_out():
        return
    span = trace.get_current_span()
    parsed = parse_traceparent(traceparent)
    if parsed is not None and span.is_recording():
        trace_id, span_id, flags = parsed
        linked = trace.SpanContext(
            trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags)
        )
        span.add_link(linked, {LINK_KIND: "command"})


def tracer() -> trace.Tracer:
    """The bridge's tracer (a no-op one while tracing is off)."""
    return _NO_TRACER if active is None else active.tracer
