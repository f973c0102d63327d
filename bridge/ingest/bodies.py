"""A callback's body as it arrives: whole, cut at the size limit, or what came of it before it
stalled, its sender left or its chunked framing broke (:class:`BodyIncomplete`)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestPayloadError

from bridge.errors import BodyTimeout, BrokenChunkedBody, CallbackError
from bridge.settings import HttpSettings
from bridge.web.errors import BrokenBody, detail

_READ_CHUNK = 64 * 1024


class BodyIncomplete(Exception):
    """The body did not arrive whole, for ``error``; ``partial`` is what arrived of it."""

    def __init__(self, partial: bytes, error: CallbackError) -> None:
        super().__init__(error.message)
        self.partial = partial
        self.error = error


async def read_body(request: web.Request, http: HttpSettings) -> tuple[bytes, bool]:
    """The body, cut at ``http.max_body_bytes``; ``True`` when it was cut.

    Raises :class:`BodyIncomplete` (carrying what arrived) when the body takes longer than
    ``http.body_timeout`` (a trickling sender must not hold a connection for ever), when
    the sender closes the connection before it is complete, and when its chunked framing
    breaks.
    """
    limit = http.max_body_bytes
    chunks: list[bytes] = []
    try:
        if request.content.is_eof():
            # The whole body came with the headers (every FoneStorm callback, and every
            # GET): take it without a coroutine or a timer per read.
            body = request.content.read_nowait(-1)
            return (body[:limit], True) if len(body) > limit else (body, False)
        async with asyncio.timeout(http.body_timeout):
            # Announced too large: refused once the limit's worth (kept) has arrived.
            enough = limit if (request.content_length or 0) > limit else limit + 1
            size = 0
            while chunk := await request.content.read(_READ_CHUNK):
                size += len(chunk)
                if size >= enough:
                    chunks.append(chunk[: len(chunk) - max(0, size - limit)])
                    return b"".join(chunks), True
                chunks.append(chunk)
    except TimeoutError:
        received = f"{sum(map(len, chunks))} bytes received"
        raise BodyIncomplete(
            b"".join(chunks),
            BodyTimeout(f"the body did not arrive within {http.body_timeout:g}s ({received})"),
        ) from None
    except ConnectionResetError:
        # aiohttp's word for a sender gone mid-body: an incomplete body, not a bug of ours.
        received = f"{sum(map(len, chunks))} bytes received"
        raise BodyIncomplete(
            b"".join(chunks),
            BodyTimeout(
                f"the sender closed the connection before the body was complete ({received})"
            ),
        ) from None
    except (RequestPayloadError, HttpProcessingError) as exc:
        # The parser gave up on the body's framing (bridge.web.connection fails the read at
        # once; the pure-Python parser may hand over its own error); what arrived before
        # the fault is kept.
        if isinstance(exc, BrokenBody):
            chunks.append(exc.unread)
        partial = b"".join(chunks)[:limit]
        raise BodyIncomplete(
            partial,
            BrokenChunkedBody(
                f"the chunked body is malformed: {detail(exc)} ({len(partial)} bytes of it "
                "received before the fault)"
            ),
        ) from None
    return b"".join(chunks), False


def arrived(content: StreamReader, limit: int) -> tuple[bytes, bool]:
    """What has arrived of a body no handler reads, cut at ``limit``, waiting for nothing;
    ``True`` when that is not all of it (cut, still coming, or broken)."""
    error = content.exception()
    if error is not None:
        unread = error.unread if isinstance(error, BrokenBody) else b""
        return unread[:limit], True
    body = content.read_nowait(-1)
    return body[:limit], len(body) > limit or not content.is_eof()
