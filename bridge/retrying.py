"""Reconnect loops: one backoff policy and one retry helper for every "until Kafka answers" loop.

The delays are a pure generator (tested as a table); :func:`retry` is the thin shell that
sleeps between attempts. Cancellation is never caught: a task stopped on shutdown stops here.
FoneStorm requests have their own policy (``Retry-After``, deadlines, the ledger) in
:mod:`bridge.commands.policy`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def backoff_delays(initial: float = 0.5, maximum: float = 10.0) -> Iterator[float]:
    """``initial``, doubling each time, capped at ``maximum``, for ever."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * 2, maximum)


async def retry(
    action: Callable[[], Awaitable[T]],
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    what: str,
    initial: float = 0.5,
    maximum: float = 10.0,
    on_failure: Callable[[BaseException], Awaitable[None]] | None = None,
    level: int = logging.WARNING,
    unless: Callable[[BaseException], bool] | None = None,
) -> T:
    """``await action()`` until it does not raise ``retry_on``; log and back off in between.

    ``on_failure`` runs after each failed attempt (to release what the attempt acquired);
    an error for which ``unless`` is true is raised at once.
    """
    delays = backoff_delays(initial, maximum)
    while True:
        try:
            return await action()
        except retry_on as exc:
            if unless is not None and unless(exc):
                raise
            if on_failure is not None:
                await on_failure(exc)
            delay = next(delays)
            log.log(level, "%s failed (%s); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
