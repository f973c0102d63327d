"""The pieces of the OTel SDK the bridge builds itself: sampler, id generator, resource.

The sampler, and a root span's sampling decided before anything is built.

Nearly every callback starts a trace of its own, and at 1% sampling nearly all of them are
dropped: building a dropped span through the SDK (sampler, ids, span context, the OTel context)
would be most of what tracing costs a callback. For the standard samplers
(``OTEL_TRACES_SAMPLER``) a root span's decision is a bound on its trace id, so the bridge
builds the sampler itself from the same variables and keeps that bound: a root span whose
trace id falls outside it is never built, and one inside it is built by the SDK with that very
trace id (:class:`ChosenIds`), so the SDK's sampler decides the same.
"""

from __future__ import annotations

import os

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)

_STATIC: dict[str, tuple[Sampler, float]] = {
    "always_on": (ALWAYS_ON, 1.0),
    "always_off": (ALWAYS_OFF, 0.0),
    "parentbased_always_on": (DEFAULT_ON, 1.0),
    "parentbased_always_off": (DEFAULT_OFF, 0.0),
}
_RATIO: dict[str, type[Sampler]] = {
    "traceidratio": TraceIdRatioBased,
    "parentbased_traceidratio": ParentBasedTraceIdRatio,
}


def from_env(
    environ: os._Environ[str] | dict[str, str] = os.environ,
) -> tuple[Sampler | None, int | None]:
    """The sampler ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG`` name, built as the
    SDK builds it, and the bound under which a root span's trace id is sampled (see
    :func:`~bridge.obs.trace_context.sampled_root`).

    ``(None, None)`` for a name the SDK does not know: the SDK then chooses (and warns).
    """
    name = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").lower()
    if name in _STATIC:
        sampler, rate = _STATIC[name]
        return sampler, TraceIdRatioBased.get_bound_for_rate(rate)
    if name not in _RATIO:
        return None, None
    try:
        rate = float(environ.get("OTEL_TRACES_SAMPLER_ARG", ""))
        sampler = _RATIO[name](rate)  # type: ignore[call-arg]
    except (ValueError, TypeError):
        # The SDK's own fallback for a missing or unusable ratio.
        rate = 1.0
        sampler = _RATIO[name](rate)  # type: ignore[call-arg]
    return sampler, TraceIdRatioBased.get_bound_for_rate(rate)


class ChosenIds(RandomIdGenerator):
    """Random ids, except that the next trace id may be chosen (the one a root span was
    sampled by). The provider asks for one only while a span starts, on the caller's thread."""

    def __init__(self) -> None:
        self.chosen = 0

    def generate_trace_id(self) -> int:
        """The chosen trace id once, else a random one."""
        chosen, self.chosen = self.chosen, 0
        return chosen or super().generate_trace_id()


class FrozenResource(Resource):
    """A :class:`Resource` that computes its hash once.

    The OTLP encoder groups spans by resource, hashing it once per span, and a resource's hash
    serialises its attributes to JSON each time: a tenth of the export's cost. A resource
    never changes, so neither does its hash.
    """

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other)
