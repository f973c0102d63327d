"""OpenTelemetry tracing, configured only by the standard ``OTEL_*`` environment variables.

Off unless an exporter is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER`` other than ``none``), and
``OTEL_SDK_DISABLED=true`` always wins: by default nothing is instrumented and the SDK is not
even imported, so tracing costs nothing. When on, the official instrumentations do the work:

* aiohttp server: a SERVER span per callback, continuing an incoming ``traceparent``;
* aiokafka: a PRODUCER span per record, its context injected as the ``traceparent`` header
  (and, by the produce hook here, as ``ce_traceparent``: the CloudEvents distributed-tracing
  extension in binary mode); CONSUMER spans on polls;
* aiohttp client: a CLIENT span per create-call request, with ``traceparent`` sent to FoneStorm.

The worker adds one CONSUMER "process" span per command, continuing the ``traceparent`` (or
``ce_traceparent``) the upstream producer put on the command record, so the ledger writes, the
create-call request, the result and ``CallPlaced`` are one trace; the receiver links each
``BEGIN``/``END`` event's span to that trace (the ledger's ``done`` record carries it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web
from opentelemetry import propagate, trace

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
CE_TRACEPARENT = "ce_traceparent"
_SCOPE = "fonestorm-bridge"
# The operations endpoints are polled every few seconds: spans about them are noise.
_EXCLUDED_URLS = "healthz,readyz,metrics"

_provider: TracerProvider | None = None
_middlewares: list[Any] = []


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


def setup(exporter: SpanExporter | None = None) -> bool:
    """Instrument this process when ``OTEL_*`` asks for it (or ``exporter`` is given: tests).

    Returns whether tracing is on. Call before the application and its clients are built.
    """
    global _provider  # noqa: PLW0603 - one provider per process, like the OTel globals
    if _provider is not None:
        return True
    if exporter is None and not configured():
        return False
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.aiohttp_server import (
        AioHttpServerInstrumentor,
        create_aiohttp_middleware,
    )
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; only when they
    # name no service is it ours rather than the SDK's "unknown_service".
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "fonestorm-bridge"}))
    provider = TracerProvider(resource=resource)
    if exporter is None:
        provider.add_span_processor(BatchSpanProcessor(_exporter_from_env()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    os.environ.setdefault("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", _EXCLUDED_URLS)
    server = AioHttpServerInstrumentor()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server.instrument(tracer_provider=provider)
    # instrument() replaces web.Application with a subclass, which aiohttp deprecates (a
    # warning per app); keep its set-up, put the class back, and add its middleware ourselves.
    web.Application = server._original_app  # type: ignore[misc]
    _middlewares[:] = [create_aiohttp_middleware(tracer_provider=provider)]
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    AIOKafkaInstrumentor().instrument(
        tracer_provider=provider, async_produce_hook=_cloudevents_traceparent
    )
    _provider = provider
    log.info("tracing on: spans exported as the OTEL_* environment variables say")
    return True


def server_middlewares() -> list[Any]:
    """The SERVER-span middleware, first in an app's list (none while tracing is off)."""
    return list(_middlewares)


def shutdown() -> None:
    """Flush spans and remove the instrumentation (end of process, or of a test)."""
    global _provider  # noqa: PLW0603
    if _provider is None:
        return
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

    AioHttpServerInstrumentor().uninstrument()
    AioHttpClientInstrumentor().uninstrument()
    AIOKafkaInstrumentor().uninstrument()
    _middlewares.clear()
    _provider.shutdown()
    _provider = None


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


async def _cloudevents_traceparent(span: Any, args: Any, kwargs: dict[str, Any]) -> None:
    """Produce hook: copy the injected ``traceparent`` to ``ce_traceparent`` as well."""
    headers = kwargs.get("headers")
    if isinstance(headers, list):
        for name, value in list(headers):
            if name == TRACEPARENT:
                headers.append((CE_TRACEPARENT, value))
                break


def _header(headers: Sequence[tuple[str, bytes]], *names: str) -> str | None:
    for wanted in names:
        for name, value in headers:
            if name == wanted and value:
                return value.decode("ascii", "replace")
    return None


def record_traceparent(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The ``traceparent`` a record carries (plain header first, then CloudEvents')."""
    return _header(record.headers or (), TRACEPARENT, CE_TRACEPARENT)


@contextlib.contextmanager
def processing(record: ConsumerRecord[bytes, bytes], group: str) -> Iterator[None]:
    """A CONSUMER "process" span for one command record, continuing its producer's trace."""
    if _provider is None:
        yield
        return
    parent = record_traceparent(record)
    carrier = {TRACEPARENT: parent} if parent else {}
    with tracer().start_as_current_span(
        f"{record.topic} process",
        context=propagate.extract(carrier),
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": group,
            **({"messaging.kafka.message.key": record.key.decode(errors="replace")}
               if record.key is not None else {}),
        },
    ):  # fmt: skip
        yield


def annotate(**attributes: str) -> None:
    """Set attributes (e.g. the command id) on the current span; nothing when tracing is off."""
    if _provider is not None:
        trace.get_current_span().set_attributes(attributes)


def link_current_span(traceparent: str | None) -> None:
    """Link the current span to the trace ``traceparent`` names (a callback to its command)."""
    if _provider is None or not traceparent:
        return
    span_context = trace.get_current_span(
        propagate.extract({TRACEPARENT: traceparent})
    ).get_span_context()
    if span_context.is_valid:
        trace.get_current_span().add_link(span_context, {"fonestorm_bridge.link": "command"})


def tracer() -> trace.Tracer:
    """The bridge's tracer (a no-op one while tracing is off)."""
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer(_SCOPE)
