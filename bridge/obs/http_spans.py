"""The HTTP spans: a SERVER span per callback (and per sandbox request), a CLIENT span per request
to FoneStorm.

Made only while tracing is on (:mod:`bridge.obs.tracing`, whose docstring says what the bridge
traces and how); every function here returns at once while it is off.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace

from bridge.obs import tracing
from bridge.obs.span_scopes import (
    CE_TRACEPARENT,
    NO_SPAN,
    Current,
    Headers,
    SampledOut,
    record_headers,
)
from bridge.obs.trace_context import (
    NOTHING,
    TRACEPARENT,
    TRACESTATE,
    draw,
    incoming,
    sampled_root,
    server_attributes,
    span_name,
    unsampled_traceparent,
)

if TYPE_CHECKING:
    import aiohttp

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def server_span(
    request: web.Request, *, trust_incoming: bool
) -> contextlib.AbstractContextManager[trace.Span | None]:
    """The SERVER span of ``request``, current while the block runs (None while tracing is
    off, or when the trace is not sampled: then no span is built at all).

    Start it only once the sender is known to be allowed: until then nothing of what the
    request says is used. It continues the request's W3C context when ``trust_incoming``,
    else starts a trace (its own sampling decision) linked to that context. The records
    written meanwhile carry its context (no send span of their own).
    """
    on = tracing.active
    if on is None:
        return NO_SPAN
    return _server_span(on, request, trust_incoming)


def _server_span(
    on: tracing.Active, request: web.Request, trust_incoming: bool
) -> contextlib.AbstractContextManager[trace.Span | None]:
    headers = request.headers
    traceparent = headers.get(TRACEPARENT)
    found = (
        incoming(traceparent, headers.get(TRACESTATE), trusted=trust_incoming)
        if traceparent is not None
        else NOTHING
    )
    chosen = 0
    if found.parent is None and on.root_bound is not None:
        trace_id = draw(128)
        if not sampled_root(trace_id, on.root_bound):
            # Nothing to record: only the context its records carry, marked not sampled.
            return SampledOut(_sampled_out_headers(trace_id, draw(64), w3c_only=on.w3c_only))
        chosen = trace_id
    # An empty context, not the current one: nothing but the decision above picks the parent.
    parent = otel_context.Context()
    if found.parent is not None:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(found.parent), parent)
    links = () if found.link is None else (trace.Link(found.link, {tracing.LINK_KIND: "incoming"}),)
    name, attributes = _server_names(request.method, _route(request))
    on.ids.chosen = chosen  # the trace id sampled above, for the SDK's sampler to see
    span = on.tracer.start_span(name, parent, trace.SpanKind.SERVER, attributes, links)
    # Its records carry its own context: it covers their sends, and a send span per record
    # would double what a sampled callback costs (bench/NOTES.md, Tracing).
    return Current(span, record_headers(span.get_span_context(), w3c_only=on.w3c_only))


def _sampled_out_headers(trace_id: int, span_id: int, *, w3c_only: bool) -> Headers:
    if w3c_only:
        parent = unsampled_traceparent(trace_id, span_id)
        return ((TRACEPARENT, parent), (CE_TRACEPARENT, parent))
    flags = trace.TraceFlags(trace.TraceFlags.RANDOM_TRACE_ID)
    span_context = trace.SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags)
    return record_headers(span_context, w3c_only=False)


@functools.lru_cache(maxsize=64)
def _server_names(method: str, route: str) -> tuple[str, dict[str, str]]:
    # Computed once per method and route, not per request (the SDK copies the attributes).
    return span_name(method, route), server_attributes(method, route)


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
    if tracing.active is None:
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


def client_trace_configs() -> list[aiohttp.TraceConfig]:
    """For an ``aiohttp.ClientSession``: a CLIENT span per request, ``traceparent`` sent.

    The official instrumentation, for one session only (the bridge's requests to FoneStorm):
    its attributes are the URL without query and credentials, and no header unless the
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_*`` variables ask. Empty while tracing is off.
    """
    on = tracing.active
    if on is None:
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    return [create_trace_config(tracer_provider=on.provider)]
