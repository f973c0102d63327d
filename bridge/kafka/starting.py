"""Starting aiokafka clients so that neither a failure nor a cancellation leaks a connection.

aiokafka's ``bootstrap()`` opens a connection and sends a metadata request on it. Cancelled
during that request, it neither closes the connection nor keeps it where ``close()`` would find
it (aiokafka 0.12, ``client.py``). A receiver stopped just after it became ready, while its
correlator's topic check was still connecting over TLS, left an open socket and a pending
reader task behind (CI, ``test_kafka_tls``). So a start is never cancelled half-way: it may run
on for up to :data:`START_GRACE` seconds, the client is closed, and only then does the
cancellation go on. A start that fails closes the client too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: Seconds a cancelled start may still take to finish before it is cancelled after all.
START_GRACE = 5.0


async def start_or_close(
    start: Callable[[], Awaitable[object]],
    close: Callable[[], Awaitable[object]],
    *,
    grace: float = START_GRACE,
    close_on_error: bool = True,
) -> None:
    """Run ``start()``; if it fails, or the caller is cancelled meanwhile, ``close()`` and raise.

    ``close_on_error=False`` closes only on cancellation, for a client whose start is retried.
    """
    starting = asyncio.ensure_future(start())
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        await _finish(_settle(starting, close, grace))
        raise
    except BaseException:
        if close_on_error:
            await _finish(close())
        raise


async def _settle(
    starting: asyncio.Future[object], close: Callable[[], Awaitable[object]], grace: float
) -> None:
    await asyncio.wait([starting], timeout=grace)
    if not starting.done():
        log.warning("a Kafka client took over %.0fs to start; closing it anyway", grace)
        starting.cancel()
        await asyncio.wait([starting])
    if not starting.cancelled():
        starting.exception()  # retrieved: whatever it was, the client is closed next
    await close()


async def _finish(cleanup: Awaitable[object]) -> None:
    """Await ``cleanup`` to its end even if cancelled meanwhile; the caller raises after it."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            continue  # already on the way out; stopping half-way is what leaks
    if not task.cancelled() and (exc := task.exception()) is not None:
        # Not raised: the start's own error (or the cancellation) is what the caller needs.
        log.warning("closing a Kafka client that did not start failed: %r", exc)
