"""The callback endpoint: HTTP request in, ``CallEvent`` on Kafka out, 2xx only once Kafka has it.

Anything refused is produced to the dead-letter topic *before* the 4xx is sent; if even that
fails the caller gets 503, so FoneStorm retries and nothing is lost. Who may send is
:mod:`~bridge.ingest.senders`; how a body is read, :mod:`~bridge.ingest.bodies`; what a dead
letter keeps, :mod:`~bridge.ingest.dead_letters`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson
from aiohttp import hdrs, web

from bridge.contracts.base import utcnow
from bridge.contracts.calls import CallEvent, Direction, call_event_json, call_event_type
from bridge.contracts.dead_letters import DeadLetter
from bridge.errors import (
    CallbackError,
    Forbidden,
    InternalError,
    PayloadTooLarge,
    PublishError,
    RecordRejected,
    Unauthorized,
    UnsupportedMediaType,
)
from bridge.ingest import parsing
from bridge.ingest.bodies import BodyIncomplete, arrived, read_body
from bridge.ingest.correlation import CallCorrelator
from bridge.ingest.dead_letters import callback_dead_letter
from bridge.ingest.senders import SenderCheck, refusal
from bridge.kafka.cloudevents import cloudevent_headers
from bridge.kafka.publisher import Publisher
from bridge.obs import http_spans, tracing
from bridge.obs.logs import Throttle, log_context
from bridge.obs.metrics import Metrics
from bridge.phone import to_e164
from bridge.settings import Settings
from bridge.web.errors import error_response

log = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024

_CALL_EVENT_SCHEMA = CallEvent.schema_id()
_JSON_HEADERS = {hdrs.CONTENT_TYPE: "application/json; charset=utf-8"}

#: Seconds between log lines about refused credentials (bridge_callbacks_total counts each).
UNAUTHORIZED_LOG_INTERVAL = 60.0


class CallbackReceiver:
    """Handles ``/callbacks/calls``."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        metrics: Metrics,
        correlator: CallCorrelator | None = None,
    ) -> None:
        self._settings = settings
        self._publisher = publisher
        self._metrics = metrics
        self._correlator = correlator
        self._trust_incoming = settings.tracing.trust_incoming_context
        self._senders = SenderCheck(settings)
        self._unauthorized_log = Throttle(UNAUTHORIZED_LOG_INTERVAL)

    def _data(self, request: web.Request, body: bytes, truncated: bool) -> parsing.CallbackData:
        if request.method == hdrs.METH_GET:
            return parsing.validate(parsing.parse_query(request.rel_url.raw_query_string))
        if request.method != hdrs.METH_POST:
            raise CallbackError(
                f"method {request.method} is not allowed; use GET or POST",
                code="method_not_allowed",
            )
        # Every line: a list header sent on two lines is one list ("identity" then "gzip").
        encoding = ", ".join(request.headers.getall(hdrs.CONTENT_ENCODING, ())).strip().lower()
        if encoding not in ("", "identity"):
            raise UnsupportedMediaType(
                f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed",
                code="unsupported_content_encoding",
            )
        # aiohttp undoes only the chunking of "gzip, chunked": the rest is compression too.
        transfer = request.headers.get(hdrs.TRANSFER_ENCODING, "").strip().lower()
        if transfer not in ("", "chunked"):
            raise UnsupportedMediaType(
                f"Transfer-Encoding {transfer!r} is not accepted; send the body uncompressed",
                code="unsupported_content_encoding",
            )
        if truncated:
            raise PayloadTooLarge(
                f"body is larger than the limit of {self._settings.http.max_body_bytes} bytes"
            )
        return parsing.validate_post(request.content_type, request.charset, body)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Accept one callback: check its sender, then validate, produce, answer."""
        started = time.perf_counter()
        tally = _Tally(_delivery_method(request))
        try:
            try:
                self._senders.check(request)
            except (Forbidden, Unauthorized) as exc:
                tally.outcome = "forbidden" if isinstance(exc, Forbidden) else "unauthorized"
                return self._refuse(request, exc)
            except Exception as exc:  # noqa: BLE001 - as in _handle_allowed
                tally.outcome = "error"
                return await self._failed(request, b"", False, exc)
            # Traced only now: a sender that may not send callbacks must not get a span, nor
            # choose a trace, by what its request says.
            with http_spans.server_span(request, trust_incoming=self._trust_incoming) as span:
                response = await self._handle_allowed(request, tally)
                http_spans.responded(span, response.status)
                return response
        finally:
            m = self._metrics
            m.child(m.callbacks, tally.method, tally.direction, tally.status, tally.outcome).inc()
            m.child(m.callback_latency, tally.outcome).observe(time.perf_counter() - started)

    async def _handle_allowed(self, request: web.Request, tally: _Tally) -> web.StreamResponse:
        body, truncated = b"", False
        try:
            try:
                body, truncated = await read_body(request, self._settings.http)
            except BodyIncomplete as incomplete:
                tally.outcome = "rejected"
                return await self._reject(request, incomplete.partial, True, incomplete.error)
            try:
                data = self._data(request, body, truncated)
            except CallbackError as exc:
                tally.outcome = "rejected"
                return await self._reject(request, body, truncated, exc)
            tally.direction, tally.status = data.direction.value, data.status.value
            with log_context(call_id=data.uid):
                return await self._accept(data)
        except PublishError as exc:
            tally.outcome = "unavailable"
            return _unavailable(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one answer, not the endpoint
            tally.outcome = "error"
            return await self._failed(request, body, truncated, exc)

    async def keep_refused(
        self, request: web.Request, error: CallbackError
    ) -> web.StreamResponse | None:
        """Dead-letter a callback the server refused before :meth:`handle` could run (an
        ``Expect`` it does not meet), with what had arrived of its body: waiting for the rest
        would hold the sender, which waits for an answer.

        ``None`` once kept, and for a sender that may not send callbacks (nothing is kept of
        it): the server's answer stands. Else the 503 to answer instead, Kafka having not
        taken the dead letter.
        """
        started = time.perf_counter()
        tally = _Tally(_delivery_method(request), outcome="rejected")
        try:
            try:
                self._senders.check(request)
            except (Forbidden, Unauthorized) as exc:
                tally.outcome = "forbidden" if isinstance(exc, Forbidden) else "unauthorized"
                return None
            body, truncated = arrived(request.content, self._settings.http.max_body_bytes)
            await self._reject(request, body, truncated, error)
        except PublishError as exc:
            tally.outcome = "unavailable"
            return _unavailable(exc)
        finally:
            m = self._metrics
            m.child(m.callbacks, tally.method, tally.direction, tally.status, tally.outcome).inc()
            m.child(m.callback_latency, tally.outcome).observe(time.perf_counter() - started)
        return None

    def _refuse(self, request: web.Request, error: Forbidden | Unauthorized) -> web.Response:
        """401 or 403, nothing produced; logged at most once a minute (a stranger can repeat)."""
        count = self._unauthorized_log.hit(time.monotonic())
        if count is not None:
            origin = request.remote
            source = error.source if isinstance(error, Forbidden) else None
            if source is not None and source != origin:
                origin = f"{source} through {origin}"
            log.warning(
                "%d callbacks refused for their source or credentials since the last such line "
                "(this one: %s, from %s)",
                count,
                error.message,
                origin,
            )
        return refusal(error)

    async def _failed(
        self, request: web.Request, body: bytes, truncated: bool, exc: Exception
    ) -> web.Response:
        # One line, no traceback: a request that triggers a bug can be repeated at will.
        log.error("callback failed unexpectedly: %r", exc)
        error = InternalError(f"the bridge failed on this callback ({type(exc).__name__})")
        try:
            return await self._reject(request, body, truncated, error, logged=True)
        except PublishError as unavailable:
            return _unavailable(unavailable)

    async def _accept(self, data: parsing.CallbackData) -> web.Response:
        tracing.annotate(**{"fonestorm_bridge.call_id": data.uid})
        # Before any wait for the ledger: received_at (and ce_time) is when it came.
        received_at = utcnow()
        command_id = correlation_id = None
        correlator = self._correlator
        reconciled = None
        if correlator is not None:
            found = correlator.known(data.uid)
            if found.command_id is None and data.direction is Direction.OUTBOUND:
                # Only outbound calls can have been placed by the bridge; only they may wait.
                region = self._settings.callbacks.default_region
                numbers = (to_e164(data.from_, region), to_e164(data.to, region))
                at_once = correlator.at_once(data.uid, numbers)
                found = await correlator.lookup(data.uid, numbers) if at_once is None else at_once
            command_id, correlation_id = found.command_id, found.correlation_id
            reconciled = found.reconciled
            # The callback's trace is FoneStorm's request; the placement's is the command's.
            tracing.link_current_span(found.traceparent)
        fields = parsing.event_fields(
            data,
            region=self._settings.callbacks.default_region,
            received_at=received_at,
            command_id=command_id,
            correlation_id=correlation_id,
        )
        event_id: str = fields["event_id"]
        # The record publish_event would write for CallEvent(**fields) (a unit test compares
        # them), without building the model: see call_event_json.
        headers = cloudevent_headers(
            event_id=event_id,
            source=self._settings.callbacks.source,
            ce_type=call_event_type(data.status),
            time=received_at,
            subject=data.uid,
            dataschema=_CALL_EVENT_SCHEMA,
        )
        topic = self._settings.topics.call_events
        headers.extend(self._publisher.id_headers(topic, _CALL_EVENT_SCHEMA))
        metadata = await self._publisher.publish(
            topic,
            call_event_json(fields),
            key=data.uid.encode(),
            headers=headers,
        )
        if reconciled is not None and correlator is not None:
            # Before the answer: if it fails, FoneStorm delivers the callback again.
            await correlator.announce(self._publisher, data.uid, reconciled)
        # DEBUG, not INFO: the record in Kafka and bridge_callbacks_total already account for
        # every accepted callback, and a line per callback is a large share of its CPU.
        # Guarded: even unlogged, its arguments cost a callback a microsecond or two.
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "callback %s %s produced to %s[%d]@%d",
                data.direction.value,
                data.status.value,
                metadata.topic,
                metadata.partition,
                metadata.offset,
                extra={"event_id": event_id, "command_id": command_id},
            )
        return web.Response(
            body=orjson.dumps({"event_id": event_id, "call_id": data.uid}),
            # A header, not content_type= and charset=, which aiohttp would parse and rebuild.
            headers=_JSON_HEADERS,
        )

    async def _reject(
        self,
        request: web.Request,
        body: bytes,
        truncated: bool,
        error: CallbackError,
        *,
        logged: bool = False,
    ) -> web.Response:
        letter = callback_dead_letter(request, body, truncated, error)
        try:
            await self._publish_dead_letter(letter)
        except RecordRejected as refused:
            # Over the record limit (a body limit raised past it, a topic's max.message.bytes):
            # a 503 would only bring the same callback back. Everything but the body fits.
            log.warning("%s; dead-lettering the callback without its body", refused.message)
            letter = callback_dead_letter(request, body, truncated, error, keep_body=False)
            await self._publish_dead_letter(letter)
        self._metrics.dead_letters.labels("callback", error.code).inc()
        if not logged:
            log.warning(
                "callback rejected (%s): %s",
                error.code,
                error.message,
                extra={"dead_letter_id": letter.dead_letter_id},
            )
        response = error_response(error)
        if truncated:
            # The rest of the body (oversized or stalled) is not wanted: no keep-alive, and the
            # server drops the connection after LINGERING_TIME of reading it.
            response.force_close()
        return response

    async def _publish_dead_letter(self, letter: DeadLetter) -> None:
        await self._publisher.publish_event(
            self._settings.topics.dead_letters,
            letter,
            source=self._settings.callbacks.source,
            signing_key=self._settings.dead_letters.key_for("callback"),
        )


def _unavailable(error: PublishError) -> web.Response:
    response = error_response(error)
    response.headers[hdrs.RETRY_AFTER] = "1"
    return response


@dataclass(slots=True)
class _Tally:
    """The labels of one callback's ``bridge_callbacks_total``, filled in as it is handled."""

    method: str
    direction: str = "unknown"
    status: str = "unknown"
    outcome: str = "accepted"


def _delivery_method(request: web.Request) -> str:
    """FoneStorm's name of the delivery method: GET, POST (form) or JSON."""
    if request.method == hdrs.METH_GET:
        return "GET"
    if request.method == hdrs.METH_POST:
        return "JSON" if request.content_type == parsing.JSON_CONTENT_TYPE else "POST"
    return "other"
