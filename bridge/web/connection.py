"""The connections of both HTTP ports: aiohttp's handler, with a deadline for each request head
and the bridge's answers to what aiohttp refuses by itself.

aiohttp lets a request line and headers trickle in for as long as the keep-alive timeout
(75 s), and a connection that sends a byte now and then holds its slot all that time
(slowloris). Its server has no setting for this, so connections here are
:class:`BridgeRequestHandler`, aiohttp's own handler with these changes:

* the request head (request line and headers) must be complete within
  ``BRIDGE_HTTP__HEADER_TIMEOUT``: counted from the connection's accept for its first request,
  as Go's ``ReadHeaderTimeout`` does, and from the first byte of each later one (between
  requests the keep-alive timeout rules). Past it the connection is closed without an answer;
* a request aiohttp's HTTP parser refuses (it answers before any handler runs), or one no
  handler can serve (``CONNECT``, ``OPTIONS *``, an HTTP version other than 1.x, an unknown
  ``Expect``), is answered in the JSON error shape with a precise code
  (:mod:`bridge.web.refused`), counted, and logged at most once a minute with a count, not
  once per request: anyone can send them. One refused for its ``Expect`` is a whole request,
  and the app's ``keep_refused`` dead-letters it first when it was a callback;
* a body whose chunked framing breaks half-way fails its reader at once (it would otherwise
  wait out the body timeout: aiohttp queues the parser's error behind the request) and the
  connection is closed after its request's answer. Each request head and the bytes behind it
  are parsed apart (also a head behind another request in the same packet, or one whose blank
  line was cut between packets), so that the request is handed over even when its broken body
  came with it;
* an absolute-form target without a path (``GET http://host``) is routed as ``/``.

Refusals are counted in ``bridge_http_refused_total``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

from bridge.errors import BridgeError
from bridge.obs.logs import Throttle
from bridge.obs.metrics import Metrics
from bridge.web import errors, refused
from bridge.web.appkeys import KeepRefused

log = logging.getLogger(__name__)

#: Seconds between log lines about refused requests of one kind (the metric counts each).
REFUSED_LOG_INTERVAL = 60.0

_CR_LF = b"\r\n"


class Refusals:
    """Counts requests refused before any handler ran, and logs them at most once a minute."""

    def __init__(self, metrics: Metrics) -> None:
        self._counter = metrics.http_refused
        self._throttles: dict[str, Throttle] = {}

    def refused(self, reason: str, detail: str, peer: object) -> None:
        """Count one refusal; a log line when its kind has not been logged for a while."""
        self._counter.labels(reason).inc()
        throttle = self._throttles.setdefault(reason, Throttle(REFUSED_LOG_INTERVAL))
        count = throttle.hit(time.monotonic())
        if count is not None:
            log.warning(
                "%d HTTP requests refused (%s) since the last such line (this one: %s, from %s)",
                count,
                reason,
                detail,
                peer,
            )


class BridgeRequestHandler(RequestHandler):
    """aiohttp's connection handler with a deadline for each request head and JSON answers to
    what aiohttp refuses by itself (see the module)."""

    __slots__ = (
        "_body",
        "_failed",
        "_head_timer",
        "_header_timeout",
        "_keep_refused",
        "_refusals",
    )

    def __init__(
        self,
        manager: web.Server,
        *,
        header_timeout: float,
        refusals: Refusals,
        keep_refused: KeepRefused | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusals = refusals
        self._keep_refused = keep_refused
        #: The body of the last request parsed: a parser error while it is incomplete is its.
        self._body: StreamReader | None = None
        #: The parser failed: nothing after is parsed (it answers what was queued before).
        self._failed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the connection, and the first request head's deadline."""
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Feed the parser; a head's deadline starts with its first byte and ends with it."""
        if self._failed:
            return
        # Waiting for a request (none queued, none being handled): these bytes begin a head.
        begins_head = bool(data) and self._head_timer is None and self._waiter is not None
        # A request is queued only once the parser returns, and not at all when it fails
        # first: so between bodies each head is parsed apart from what follows it, and its
        # request is queued before the parser meets a body broken behind it in the same
        # packet; the receiver dead-letters it. (Any cut is the same to the parser.)
        body = self._body
        if body is not None and not body.is_eof():
            # Within a body the bytes are not searched (a large body would cost a search of
            # all of it): a request behind it in the same packet is fed with it.
            self._feed(data)
        elif data and data[0] in _CR_LF:
            # Perhaps the rest of a head's blank line, cut between packets.
            self._feed_heads(data)
        elif 4 <= (end := data.find(b"\r\n\r\n") + 4) < len(data):
            self._feed(data[:end])
            if not self._failed:
                rest = data[end:]
                if 13 in rest:
                    self._feed_heads(rest)
                else:
                    # No CR, so no other head in the packet (most bodies hold none).
                    self._feed(rest)
        else:
            self._feed(data)
        if self._messages:
            self._disarm()
        elif begins_head:
            # Armed once the packet is parsed, and only if the head is still incomplete: a
            # head that comes whole (nearly every one) is spared a timer scheduled and
            # cancelled at once, a noticeable share of a callback's CPU.
            self._arm()

    def _feed_heads(self, data: bytes) -> None:
        """Feed ``data`` cut after each blank line, and after the line ends it begins with
        (LF, CRLF or LF CRLF: what a blank line cut between packets leaves for the next)."""
        start = 0
        while start < min(3, len(data)) and data[start] in _CR_LF:
            start += 1
        if start:
            self._feed(data[:start])
        while not self._failed and 4 <= (end := data.find(b"\r\n\r\n", start) + 4) < len(data):
            self._feed(data[start:end])
            start = end
        if not self._failed and start < len(data):
            self._feed(data[start:] if start else data)

    def _feed(self, data: bytes) -> None:
        queued = len(self._messages)
        if self._body_in_transit():
            # Shutdown has begun, and aiohttp drops every byte from then on: the callback being
            # handled would wait out the body timeout and be refused (408, dead-lettered with
            # part of its body) instead of finishing. Its body is let in; nothing after it is
            # served (shutdown ends the connection's loop).
            close, force_close = self._close, self._force_close
            self._close = self._force_close = False
            try:
                super().data_received(data)
            finally:
                self._close, self._force_close = close, force_close
        else:
            super().data_received(data)
        if len(self._messages) > queued:
            self._screen(queued)

    def _screen(self, first: int) -> None:
        """Look at the requests (or parser errors) one feed queued from index ``first`` on."""
        messages = self._messages
        for index in range(first, len(messages)):
            message, payload = messages[index]
            if isinstance(message, _ErrInfo):
                # Nothing parses after an error: the connection ends with its answer.
                self._failed = True
                body = self._body
                if body is not None and not body.is_eof():
                    self._break_body(body, message)
                return
            self._body = payload
            refusal = refused.screen(
                message.method, message.path, message.version, message.headers.get(hdrs.EXPECT)
            )
            if refusal is not None:
                kept = refusal.letter is not None and self._keep_refused is not None
                error = refused.RefusedRequest(refusal, (message, payload) if kept else None)
                messages[index] = (_ErrInfo(refusal.status, error, refusal.message), EMPTY_PAYLOAD)
            elif message.path[:1] != "/" and (url := refused.with_root_path(message.url)):
                messages[index] = (message._replace(url=url), payload)

    def _break_body(self, body: StreamReader, error: _ErrInfo) -> None:
        """The parser failed in ``body``: fail its reader now, answer nothing after its
        request, close after it."""
        detail = errors.detail(error.exc)
        messages = self._messages
        queued = next((i for i, (_, payload) in enumerate(messages) if payload is body), None)
        if queued is not None or any(_held(message) is body for message, _ in messages):
            # Not handed to a handler yet (or refused, and held for its dead letter): no reader
            # can be waiting, so what the body holds is taken now and travels with the error
            # (a reader would get the error first).
            unread = body.read_nowait(-1) if body.exception() is None else b""
            body.set_exception(errors.BrokenBody(detail, unread))
        if queued is not None:
            # Requests queued before it are answered first (closing now would drop them);
            # its answer ends the connection.
            message, _ = messages[queued]
            if not isinstance(message, _ErrInfo):  # (a body of its own: always a request)
                messages[queued] = (message._replace(should_close=True), body)
        else:
            if self._current_request is not None and self._current_request.content is body:
                # A reader woken by the bytes fed before the error still gets them, then this.
                body.set_exception(errors.BrokenBody(detail))
            # (Otherwise its request was answered and the body is only being read to drop it.)
            self.close()
        body.feed_eof()
        # The parser's errors for the same bytes: answered by the receiver, or by no one.
        while messages and _parser_error(messages[-1][0]):
            messages.pop()

    def _make_error_handler(self, err_info: _ErrInfo) -> Callable[[BaseRequest], Awaitable[Any]]:
        """aiohttp's answer to an error; a refused request held for its dead letter is first
        handed to ``keep_refused``, then answered as any other."""
        exc, keep, factory = err_info.exc, self._keep_refused, self._request_factory
        if (
            not isinstance(exc, refused.RefusedRequest)
            or exc.held is None
            or exc.refusal.letter is None
            or keep is None
            or factory is None
        ):
            return super()._make_error_handler(err_info)
        (message, payload), letter = exc.held, exc.refusal.letter

        async def handler(request: BaseRequest) -> web.StreamResponse:
            answer = self.handle_error(request, err_info.status, exc, err_info.message)
            # The request as it came, on this one's writer (nothing is written through it).
            kept = factory(message, payload, self, request.writer, request.task)
            if not isinstance(kept, web.Request):  # (an app's requests are)
                return answer
            instead = await keep(kept, letter(exc.refusal.message))
            if instead is None:
                return answer
            instead.force_close()
            return instead

        return handler

    def _body_in_transit(self) -> bool:
        """Closing, and the request being handled still waits for its body."""
        request = self._current_request
        return (
            (self._close or self._force_close)
            and self.transport is not None
            and request is not None
            and not request.content.is_eof()
        )

    def connection_lost(self, exc: BaseException | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to an error, in the JSON shape; a refusal before any handler is
        counted and its log line throttled."""
        if isinstance(exc, HttpProcessingError):
            refusal = refused.classify(exc)
            reason = "unsupported" if isinstance(exc, refused.RefusedRequest) else "malformed"
            self._refusals.refused(reason, errors.detail(exc), request.remote)
        else:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            refusal = refused.for_status(status)
        if request.writer.output_size > 0:
            # As aiohttp: an answer has begun, so this one cannot be sent.
            raise ConnectionError("Response is sent already, cannot send another one")
        response = errors.error_response(
            BridgeError(refusal.message, code=refusal.code), status=refusal.status
        )
        if refusal.allow is not None:
            response.headers[hdrs.ALLOW] = refusal.allow
        response.force_close()
        return response

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self._loop.call_later(self._header_timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport is None or self._messages:
            return
        peer = self.transport.get_extra_info("peername")
        self._refusals.refused(
            "header_timeout",
            f"request head not complete within {self._header_timeout:g}s",
            peer[0] if isinstance(peer, tuple) else peer,
        )
        self.force_close()


def _parser_error(message: object) -> bool:
    return isinstance(message, _ErrInfo) and not isinstance(message.exc, refused.RefusedRequest)


def _held(message: object) -> StreamReader | None:
    """The body of a refused request held for its dead letter."""
    if isinstance(message, _ErrInfo) and isinstance(message.exc, refused.RefusedRequest):
        held = message.exc.held
        return None if held is None else held[1]
    return None
