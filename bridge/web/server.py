"""The HTTP server of both ports: aiohttp's, its connections
:class:`~bridge.web.connection.BridgeRequestHandler` (a deadline for each request head, the
bridge's answers to what aiohttp refuses by itself).

:func:`run` serves an app with them until SIGTERM or SIGINT, as ``web.run_app`` would, except
that a signal during the app's start-up cancels the start-up rather than waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from bridge.settings import HttpSettings
from bridge.stop_signals import STOP_SIGNALS, received
from bridge.tasks import cancel_and_wait
from bridge.web.appkeys import KEEP_REFUSED, METRICS, KeepRefused
from bridge.web.connection import BridgeRequestHandler, Refusals

log = logging.getLogger(__name__)

#: Seconds a connection whose request was answered before its body was read (413, 408, 401)
#: goes on reading and dropping that body, so the sender can finish writing and read the
#: answer; then it is closed. aiohttp's default is 10 s, at whatever rate the sender sends.
LINGERING_TIME = 2.0


class _BridgeServer(web.Server):
    """aiohttp's server, making :class:`BridgeRequestHandler` connections."""

    def __init__(
        self,
        plain: web.Server,
        *,
        header_timeout: float,
        refusals: Refusals,
        keep_refused: KeepRefused | None,
    ) -> None:
        super().__init__(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            # The handler arguments the app put together (handler_args, keep-alive, ...).
            **plain._kwargs,
        )
        self._header_timeout = header_timeout
        self._refusals = refusals
        self._keep_refused = keep_refused

    def __call__(self) -> RequestHandler:
        return BridgeRequestHandler(
            self,
            loop=self._loop,
            header_timeout=self._header_timeout,
            refusals=self._refusals,
            keep_refused=self._keep_refused,
            **self._kwargs,
        )


class BridgeAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are :class:`BridgeRequestHandler`.

    The app must carry its :class:`Metrics` under ``METRICS`` (every bridge app does); an app
    with callbacks carries under ``KEEP_REFUSED`` how one refused before its handler is kept.
    """

    __slots__ = ("_header_timeout",)

    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        refusals = Refusals(self.app[METRICS])
        return _BridgeServer(
            plain,
            header_timeout=self._header_timeout,
            refusals=refusals,
            keep_refused=self.app.get(KEEP_REFUSED),
        )


def run(app: web.Application, http: HttpSettings, *, reuse_port: bool = False) -> None:
    """Serve ``app`` on ``http.host:http.port`` until SIGTERM or SIGINT, then stop gracefully.

    What ``web.run_app`` does: stop accepting, give in-flight requests ``http.shutdown_timeout``,
    then run the app's cleanup (the producer flushes). A signal during the app's start-up (a
    start that waits for the schema registry, say) cancels it and cleans up what had started.
    """
    asyncio.run(_serve(app, http, reuse_port=reuse_port))


async def _serve(app: web.Application, http: HttpSettings, *, reuse_port: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    if received() is not None:
        # Noted before the loop's handlers took over, after the command line last looked.
        stop.set()
    runner = BridgeAppRunner(
        app,
        header_timeout=http.header_timeout,
        shutdown_timeout=http.shutdown_timeout,
        keepalive_timeout=http.keepalive_timeout,
        access_log=None,
    )
    try:
        if await _start(runner, stop):
            site = web.TCPSite(runner, http.host, http.port, reuse_port=reuse_port or None)
            await site.start()
            await stop.wait()
    finally:
        await runner.cleanup()


async def _start(runner: web.AppRunner, stop: asyncio.Event) -> bool:
    """Set the app up, unless ``stop`` is set first: then cancel its start-up and return False.

    What had started is stopped by ``runner.cleanup()`` as after a full start, and the app's
    shutdown handlers run first as they would (the app reports not-ready meanwhile).
    """
    if stop.is_set():
        return False
    setup = asyncio.create_task(runner.setup(), name="start-up")
    stopping = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait([setup, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not setup.done():
            # Also when this task is cancelled: its cancellation goes on after this.
            await cancel_and_wait(setup)
    if not setup.cancelled():
        setup.result()  # a failed start-up (registry mode refusing) is raised as before
        return True
    log.info("stop signal during start-up: stopping what has started")
    # Only a frozen app runs its cleanup; the start-up that would have frozen it was cut short.
    runner.app.freeze()
    await runner.app.shutdown()
    return False
