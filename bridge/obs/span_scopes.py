"""How a span is current and ended, and which trace context the records written meanwhile carry.

Context managers without generators (a traced callback enters several) and the headers a
record carries; used by :mod:`bridge.obs.tracing`, which decides when.
"""

from __future__ import annotations

import contextlib
import os
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from bridge.obs.trace_context import TRACEPARENT, TRACESTATE

CE_TRACEPARENT = "ce_traceparent"

Headers = tuple[tuple[str, bytes], ...]

#: What a span maker returns when it makes no span; reusable, so entering it costs the
#: untraced (or unsampled) path one call.
NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()

# The trace context every record written in the current scope carries (a callback's), and
# whether that trace is sampled out (then no span was built at all).
_carried: ContextVar[tuple[Headers, bool] | None] = ContextVar(
    "fonestorm_bridge_carried", default=None
)


def carried() -> Headers | None:
    """The trace headers the records written in the current scope carry, if it says."""
    found = _carried.get()
    return None if found is None else found[0]


def sampled_out() -> bool:
    """Whether the current scope is a callback whose trace is not sampled (no span)."""
    found = _carried.get()
    return found is not None and found[1]


class Ended:
    """A context manager that ends ``span`` on exit (a failure recorded by type only)."""

    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def __enter__(self) -> trace.Span:
        return self._span

    def __exit__(self, kind: object, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            failed(self._span, exc)
        self._span.end()


class Current(Ended):
    """:class:`Ended`, with ``span`` the current span in between; records written meanwhile
    carry ``carried`` (its context) when given, instead of a send span's."""

    __slots__ = ("_carried", "_carried_token", "_token")

    def __init__(self, span: trace.Span, carried: Headers | None = None) -> None:
        super().__init__(span)
        self._carried = carried

    def __enter__(self) -> trace.Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        if self._carried is not None:
            self._carried_token = _carried.set((self._carried, False))
        return self._span

    def __exit__(self, kind: object, exc: BaseException | None, tb: Any) -> None:
        if self._carried is not None:
            _carried.reset(self._carried_token)
        otel_context.detach(self._token)
        super().__exit__(kind, exc, tb)


class SampledOut:
    """A callback whose trace is not sampled: no span is current, records carry ``carried``."""

    __slots__ = ("_carried", "_token")

    def __init__(self, carried: Headers) -> None:
        self._carried = carried

    def __enter__(self) -> None:
        self._token = _carried.set((self._carried, True))

    def __exit__(self, kind: object, exc: BaseException | None, tb: Any) -> None:
        _carried.reset(self._token)


def failed(span: trace.Span, exc: BaseException) -> None:
    """Mark ``span`` failed by ``exc``."""
    # The type only: an exception's message may quote what a caller sent (numbers included).
    if span.is_recording():
        span.set_status(trace.StatusCode.ERROR)
        span.set_attribute("error.type", type(exc).__qualname__)


def record_headers(span_context: trace.SpanContext, *, w3c_only: bool) -> Headers:
    """The headers that carry ``span_context`` on a record: the configured propagators', and
    ``traceparent`` again as ``ce_traceparent`` (CloudEvents' distributed-tracing extension).

    ``w3c_only`` (the propagators are W3C trace context and baggage): written here, without
    the propagators' overhead; the bridge puts no baggage in any context, so the baggage
    propagator would write nothing.
    """
    if w3c_only:
        parent = b"00-%032x-%016x-%02x" % (
            span_context.trace_id,
            span_context.span_id,
            span_context.trace_flags,
        )
        if span_context.trace_state:
            state = span_context.trace_state.to_header().encode()
            return ((TRACEPARENT, parent), (TRACESTATE, state), (CE_TRACEPARENT, parent))
        return ((TRACEPARENT, parent), (CE_TRACEPARENT, parent))
    carrier: dict[str, str] = {}
    propagate.inject(
        carrier, context=trace.set_span_in_context(trace.NonRecordingSpan(span_context))
    )
    found = tuple((name, value.encode()) for name, value in carrier.items())
    if TRACEPARENT in carrier:
        found += ((CE_TRACEPARENT, carrier[TRACEPARENT].encode()),)
    return found


def w3c_propagators(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Whether ``OTEL_PROPAGATORS`` names the W3C propagators only, trace context included."""
    names = {n.strip() for n in environ.get("OTEL_PROPAGATORS", "tracecontext,baggage").split(",")}
    return "tracecontext" in names and names <= {"tracecontext", "baggage"}
