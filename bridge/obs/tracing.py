"""OpenTelemetry tracing, configured only by the standard ``OTEL_*`` environment variables.

Off unless an exporter is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER`` other than ``none``), and
``OTEL_SDK_DISABLED=true`` always wins: by default the SDK is not even imported, and every
function here returns at once. When on, the bridge makes its spans itself, where it knows
what they are about; nothing is patched globally:

* a SERVER span per callback, started once the sender passed the source and credential
  checks; a new trace linked to the context the request brought (:mod:`trace_context`);
* a PRODUCER span per record the bridge writes (:func:`producing`), its context sent as the
  ``traceparent`` header and as ``ce_traceparent`` (the CloudEvents distributed-tracing
  extension in binary mode);
* a CONSUMER "process" span per command (:func:`processing`), continuing the ``traceparent``
  the upstream producer put on the command record, so the ledger writes, the create-call
  request (a CLIENT span, :func:`client_trace_configs`), the result and ``CallPlaced`` are one
  trace; the receiver links each ``BEGIN``/``END`` event's span to that trace.

The bridge's own reads of Kafka (the ledger and correlation followers, the command poll) make
no spans: they would be a trace per fetched batch. Spans carry no query string and no phone
number. Under a sampled-out parent no child span is made: the record carries the parent's
context, whose flags already tell everyone downstream not to record.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from bridge.obs.trace_context import (
    TRACEPARENT,
    TRACESTATE,
    incoming,
    parse_traceparent,
    server_attributes,
    span_name,
)

if TYPE_CHECKING:
    import aiohttp
    from aiokafka.structs import ConsumerRecord
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

CE_TRACEPARENT = "ce_traceparent"
SERVICE = "fonestorm-bridge"
_SCOPE = "fonestorm-bridge"
_LINK_KIND = "fonestorm_bridge.link"

_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()
_w3c_only = True
# Reusable: entering it costs the untraced (or unsampled) path one call.
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    return _provider is not None


def setup(exporter: SpanExporter | None = None, *, service: str = SERVICE) -> bool:
    """Turn tracing on when ``OTEL_*`` asks for it (or ``exporter`` is given: tests).

    ``service`` names the process when ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
    do not. Returns whether tracing is on. Call before the application and its clients are
    built. The sampler is the SDK's, from ``OTEL_TRACES_SAMPLER``.
    """
    global _provider, _tracer, _w3c_only  # noqa: PLW0603 - one provider per process
    if _provider is not None:
        return True
    if exporter is None and not configured():
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; only when they
    # name no service is it ours rather than the SDK's "unknown_service".
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service}))
    provider = TracerProvider(resource=resource)
    if exporter is None:
        provider.add_span_processor(BatchSpanProcessor(_exporter_from_env()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _provider, _tracer = provider, provider.get_tracer(_SCOPE)
    _w3c_only = _w3c_propagators()
    log.info("tracing on: spans exported as the OTEL_* environment variables say")
    return True


def shutdown() -> None:
    """Flush spans and turn tracing off (end of process, or of a test)."""
    global _provider, _tracer
    if _provider is None:
        return
    provider, _provider, _tracer = _provider, None, trace.NoOpTracer()
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


# ------------------------------------------------------------------------------ HTTP server


def server_span(
    request: web.Request, *, trust_incoming: bool
) -> contextlib.AbstractContextManager[trace.Span | None]:
    """The SERVER span of ``request``, current while the block runs (None while off).

    Start it only once the sender is known to be allowed: until then nothing of what the
    request says is used. It continues the request's W3C context when ``trust_incoming``,
    else starts a trace (its own sampling decision) linked to that context.
    """
    if _provider is None:
        return _NO_SPAN
    return _server_span(request, trust_incoming)


def _server_span(request: web.Request, trust_incoming: bool) -> _Current:
    headers = request.headers
    found = incoming(headers.get(TRACEPARENT), headers.get(TRACESTATE), trusted=trust_incoming)
    # An empty context, not the current one: nothing but the decision above picks the parent.
    parent = otel_context.Context()
    if found.parent is not None:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(found.parent), parent)
    links = () if found.link is None else (trace.Link(found.link, {_LINK_KIND: "incoming"}),)
    route = _route(request)
    span = _tracer.start_span(
        span_name(request.method, route),
        parent,
        trace.SpanKind.SERVER,
        attributes=server_attributes(request.method, route),
        links=links,
    )
    return _Current(span)


def responded(span: trace.Span | None, status: int) -> None:
    """Record the answer's status on a :func:`server_span` (5xx: the span failed)."""
    if span is not None and span.is_recording():
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(trace.StatusCode.ERROR)
            span.set_attribute("error.type", str(status))


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


def server_middlewares(prefix: str = "/") -> list[Any]:
    """A SERVER span per request under ``prefix``, continuing its callers' traces.

    Only for a service whose callers are trusted (the sandbox, playing FoneStorm's side of
    the bridge's create-call); the receiver starts its own spans. None while tracing is off.
    """
    if _provider is None:
        return []

    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(prefix):
            return await handler(request)
        with server_span(request, trust_incoming=True) as span:
            response = await handler(request)
            responded(span, response.status)
            return response

    return [traced]


# ------------------------------------------------------------------------------ HTTP client


def client_trace_configs() -> list[aiohttp.TraceConfig]:
    """For an ``aiohttp.ClientSession``: a CLIENT span per request, ``traceparent`` sent.

    The official instrumentation, for one session only (the bridge's requests to FoneStorm):
    its attributes are the URL without query and credentials, and no header unless the
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_*`` variables ask. Empty while tracing is off.
    """
    if _provider is None:
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    return [create_trace_config(tracer_provider=_provider)]


# ------------------------------------------------------------------------------ Kafka


def producing(
    topic: str, headers: list[tuple[str, bytes]]
) -> contextlib.AbstractContextManager[trace.Span | None]:
    """A PRODUCER span for one record's send (around it), its context added to ``headers``.

    Yields None when no span is made: tracing off, or the current trace not sampled (the
    record then carries the current context, sampled-out flags and all).
    """
    if _provider is None:
        return _NO_SPAN
    current = trace.get_current_span().get_span_context()
    if current.is_valid and not current.trace_flags.sampled:
        _inject(headers, current)
        return _NO_SPAN
    # Few attributes: each costs a sampled span a few microseconds to set and as many to
    # export. The record's key is the id already on the span of the callback or command.
    span = _tracer.start_span(
        f"{topic} send",
        kind=trace.SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
        },
    )
    _inject(headers, span.get_span_context())
    return _Ended(span)


def produced(span: trace.Span | None, partition: int, offset: int) -> None:
    """Record where the broker put the record of a :func:`producing` span."""
    if span is not None and span.is_recording():
        span.set_attributes(
            {
                "messaging.destination.partition.id": str(partition),
                "messaging.kafka.offset": offset,
            }
        )


def _inject(headers: list[tuple[str, bytes]], span_context: trace.SpanContext) -> None:
    if _w3c_only:
        # What the W3C propagators write, without their per-record overhead: the bridge puts
        # no baggage in any context, so the baggage propagator would write nothing.
        parent = (
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
            f"{span_context.trace_flags:02x}"
        ).encode()
        headers.append((TRACEPARENT, parent))
        if span_context.trace_state:
            headers.append((TRACESTATE, span_context.trace_state.to_header().encode()))
    else:
        carrier: dict[str, str] = {}
        ctx = trace.set_span_in_context(trace.NonRecordingSpan(span_context))
        propagate.inject(carrier, context=ctx)
        headers.extend((name, value.encode()) for name, value in carrier.items())
        found = carrier.get(TRACEPARENT)
        parent = found.encode() if found is not None else b""
    if parent:
        headers.append((CE_TRACEPARENT, parent))


def _w3c_propagators(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Whether ``OTEL_PROPAGATORS`` names the W3C propagators only, trace context included."""
    names = {n.strip() for n in environ.get("OTEL_PROPAGATORS", "tracecontext,baggage").split(",")}
    return "tracecontext" in names and names <= {"tracecontext", "baggage"}


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
    if _provider is None:
        return _NO_SPAN
    parent = otel_context.Context()
    parsed = parse_traceparent(record_traceparent(record))
    if parsed is not None:
        trace_id, span_id, flags = parsed
        upstream = trace.SpanContext(
            trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags)
        )
        parent = trace.set_span_in_context(trace.NonRecordingSpan(upstream), parent)
    span = _tracer.start_span(f"{record.topic} process", parent, trace.SpanKind.CONSUMER)
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
    return _Current(span)


# ------------------------------------------------------------------------------ any span


class _Ended:
    """A context manager that ends ``span`` on exit (a failure recorded by type only)."""

    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def __enter__(self) -> trace.Span:
        return self._span

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is not None:
            _failed(self._span, exc)
        self._span.end()


class _Current(_Ended):
    """:class:`_Ended`, with ``span`` the current span in between."""

    __slots__ = ("_token",)

    def __enter__(self) -> trace.Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        otel_context.detach(self._token)
        super().__exit__(kind, exc, tb)


def _failed(span: trace.Span, exc: BaseException) -> None:
    # The type only: an exception's message may quote what a caller sent (numbers included).
    if span.is_recording():
        span.set_status(trace.StatusCode.ERROR)
        span.set_attribute("error.type", type(exc).__qualname__)


def annotate(**attributes: str) -> None:
    """Set attributes (e.g. the command id) on the current span; nothing when tracing is off."""
    if _provider is not None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(attributes)


def link_current_span(traceparent: str | None) -> None:
    """Link the current span to the trace ``traceparent`` names (a callback to its command)."""
    if _provider is None:
        return
    parsed = parse_traceparent(traceparent)
    span = trace.get_current_span()
    if parsed is not None and span.is_recording():
        trace_id, span_id, flags = parsed
        linked = trace.SpanContext(
            trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags)
        )
        span.add_link(linked, {_LINK_KIND: "command"})


def tracer() -> trace.Tracer:
    """The bridge's tracer (a no-op one while tracing is off)."""
    return _tracer
