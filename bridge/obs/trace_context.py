"""What a traced request may take from its sender, and what its span says about it (pure).

A callback's ``traceparent`` and ``tracestate`` come from whoever reached the endpoint. Adopted,
they let a sender force sampling or hide from it, put its request into a trace of its choosing
and have every record the bridge writes carry its ``tracestate`` on. So a request starts a trace
of its own and only *links* to what it brought, unless the operator declares the sender trusted
(an ingress that starts traces). Baggage is never taken, trusted or not: it would ride on every
record to every downstream service.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from opentelemetry.trace import SpanContext, TraceFlags, TraceState

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
#: Methods a span may name; anything else is "_OTHER" (a span name must not be a sender's text).
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


@dataclass(frozen=True)
class Incoming:
    """How a request's span relates to the context it brought.

    ``parent``: continue this trace (a trusted sender); ``link``: start a new trace, linked to
    this one. At most one of them is set; neither when the request brought no valid context.
    """

    parent: SpanContext | None = None
    link: SpanContext | None = None


NOTHING = Incoming()
#: The bits of a trace id a ratio sampler looks at (as the OTel SDK's TraceIdRatioBased).
TRACE_ID_LIMIT = (1 << 64) - 1


def parse_traceparent(value: str | None) -> tuple[int, int, int] | None:
    """``(trace_id, span_id, flags)`` of a W3C ``traceparent``, or None when it is not valid.

    Version ``00`` exactly as specified; a later version may append fields after its four
    (W3C Trace Context, "versioning"); ``ff`` and all-zero ids are invalid.
    """
    match = _TRACEPARENT.fullmatch(value.strip()) if value else None
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    trace, span = int(trace_id, 16), int(span_id, 16)
    if version == "ff" or (version == "00" and rest) or trace == 0 or span == 0:
        return None
    return trace, span, int(flags, 16)


def incoming(traceparent: str | None, tracestate: str | None, *, trusted: bool) -> Incoming:
    """Whether a request continues the trace its headers name (``trusted``) or only links to it.

    An untrusted sender's ``tracestate`` is dropped: a link is not propagated, and nothing of
    it must reach the records the bridge writes. A trusted sender's is kept (at most 32
    well-formed entries, as W3C says; a malformed list is dropped whole).
    """
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return NOTHING
    trace_id, span_id, flags = parsed
    if not trusted:
        return Incoming(link=SpanContext(trace_id, span_id, is_remote=True))
    state = TraceState.from_header([tracestate]) if tracestate else TraceState()
    return Incoming(
        parent=SpanContext(
            trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags), trace_state=state
        )
    )


def span_name(method: str, route: str) -> str:
    """``POST /callbacks/calls``: the method (or ``_OTHER``) and the route's template."""
    return f"{_method(method)} {route}".rstrip()


def server_attributes(method: str, route: str) -> dict[str, str]:
    """A SERVER span's request attributes: what was asked of which route, never its content.

    No query (``url.query``, ``http.target``, ``http.url``, ``url.full``): a GET callback
    carries the caller's and callee's numbers there. No path either: the route's template
    says where it went without what a caller put into the path.
    """
    return {"http.request.method": _method(method), "http.route": route}


def _method(method: str) -> str:
    return method if method in _KNOWN_METHODS else "_OTHER"


def draw(bits: int) -> int:
    """A random id of ``bits`` bits, as the SDK's ``RandomIdGenerator`` draws them (never 0)."""
    while not (drawn := random.getrandbits(bits)):
        pass
    return drawn


def sampled_root(trace_id: int, bound: int) -> bool:
    """Whether a root span of ``trace_id`` is sampled under a ratio sampler's ``bound``."""
    return trace_id & TRACE_ID_LIMIT < bound


def unsampled_traceparent(trace_id: int, span_id: int) -> bytes:
    """The ``traceparent`` of a span that is not sampled (and has a random trace id)."""
    return b"00-%032x-%016x-02" % (trace_id, span_id)
