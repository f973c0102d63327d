"""Application wiring: ``create_app(settings)`` builds the aiohttp app and its resources.

Each resource has one cleanup context (start, ``yield``, stop), so shutdown runs in reverse
order of start-up: the HTTP server stops accepting, in-flight requests finish, then the
producer flushes. The command worker's drain is the exception: it begins with the shutdown,
beside the HTTP server's, so that ``serve`` takes no command once stopping and needs the longer
of the two drains, not their sum. The one module that knows every role: it may import every
package of the bridge but ``sandbox``, and nothing imports it but the command line.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from aiohttp import web

from bridge.commands.service import running_worker
from bridge.commands.worker import CommandWorker
from bridge.errors import BridgeError, CallbackError
from bridge.fonestorm.registration import register_callbacks
from bridge.ingest.correlation import CallCorrelator
from bridge.ingest.receiver import CallbackReceiver
from bridge.kafka.broker_watch import BrokerWatch
from bridge.kafka.lenient_records import read_any_header_name
from bridge.kafka.no_auto_create import forbid_topic_auto_creation
from bridge.kafka.publisher import Publisher
from bridge.kafka.topics import TopicWatch
from bridge.obs.metrics import Metrics
from bridge.schema_registry.registration import RegistryMode, start_registry_mode
from bridge.settings import Settings, SettingsError, receiver_auth_problem
from bridge.tasks import cancel_and_wait
from bridge.web.admin import add_operations_routes
from bridge.web.appkeys import (
    KEEP_REFUSED,
    METRICS,
    NOT_READY_REASONS,
    PUBLISHER,
    READINESS,
    SETTINGS,
    STOPPED,
    KeepRefused,
)
from bridge.web.errors import add_json_fallbacks
from bridge.web.server import LINGERING_TIME, BridgeAppRunner

log = logging.getLogger(__name__)

RECEIVER = web.AppKey("receiver", CallbackReceiver)
CORRELATOR = web.AppKey("correlator", CallCorrelator)
WORKER = web.AppKey("worker", CommandWorker)
#: Registry mode's ids and command reader (absent in plain mode).
REGISTRY_MODE = web.AppKey("registry_mode", RegistryMode)


class _StopOnce:
    """A resource's stop, run once in a task of its own: begun by whichever asks first."""

    def __init__(self, stop: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._stop = stop
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def begin(self) -> asyncio.Task[None]:
        """The stop's task, started now unless it already was."""
        if self._task is None:
            self._task = asyncio.create_task(self._stop(), name=self._name)
        return self._task


#: The command worker's stop (absent without the worker, or before it started).
WORKER_STOP = web.AppKey("worker_stop", _StopOnce)

CALLBACK_PATH = "/callbacks/calls"

# Allocations minus deallocations between young-generation collections (CPython's default: 700).
_GC_GEN0_THRESHOLD = 20_000


async def _publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    publisher = app[PUBLISHER]
    await publisher.start()
    yield
    await publisher.stop()


async def _broker_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    publisher = app[PUBLISHER]
    watch = BrokerWatch(app[METRICS], lambda: publisher.kafka_client)
    watch.start()
    yield
    await watch.stop()


async def _registry_ctx(app: web.Application) -> AsyncIterator[None]:
    """Registry mode: every schema registered before anything is produced, or no start."""
    settings = app[SETTINGS]
    mode = app[REGISTRY_MODE] = await start_registry_mode(settings.schemas, settings.topics)
    app[PUBLISHER].schema_ids = mode.ids
    try:
        yield
    finally:
        await mode.close()


async def _freeze_heap(app: web.Application) -> None:
    """Move everything built at start-up out of the garbage collector's way.

    Imports, pydantic schemas and clients are hundreds of thousands of objects that live as
    long as the process; without this every full collection walks them all, a stall the
    latency tail shows under load. A larger first generation makes the
    collector run less often for the short-lived objects of each request.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


async def _on_shutdown(app: web.Application) -> None:
    # Not ready from the first moment of shutdown, so the Service stops routing to us.
    app[PUBLISHER].begin_shutdown()


async def _receiver_topics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Check (or create) the receiver's topics in the background; not ready until they exist."""
    settings = app[SETTINGS]
    found = asyncio.Event()
    app[READINESS]["topics"] = found.is_set

    async def check() -> None:
        names = [settings.topics.call_events, settings.topics.dead_letters]
        # ERROR: a missing topic the bridge may not create needs an operator.
        watch = TopicWatch(
            settings, names, what="the receiver", on_change=app[PUBLISHER].set_missing_topics
        )
        await watch.wait()
        found.set()

    task = asyncio.create_task(check(), name="receiver-topics")
    yield
    await cancel_and_wait(task)


async def _correlator_ctx(app: web.Application) -> AsyncIterator[None]:
    correlator = app[CORRELATOR]
    await correlator.start()
    yield
    await correlator.stop()


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    mode = app.get(REGISTRY_MODE)
    resources = AsyncExitStack()
    worker, ledger, stopped = await resources.enter_async_context(
        running_worker(
            app[SETTINGS],
            app[PUBLISHER],
            app[METRICS],
            commands=None if mode is None else mode.commands,
        )
    )
    app[WORKER] = worker
    app[STOPPED]["worker"] = stopped
    app[READINESS]["worker"] = lambda: worker.ready
    # Not ready while it works from a stale copy of the ledger: newly assigned partitions
    # wait for it to catch up, so they stand still until it reads again.
    app[READINESS]["ledger"] = lambda: ledger.following
    app[NOT_READY_REASONS]["worker"] = lambda: worker.not_ready_reason
    # Begun at shutdown (_begin_worker_stop); here if the shutdown did not run.
    app[WORKER_STOP] = stop = _StopOnce(resources.aclose, "worker-stop")
    yield
    await stop.begin()


async def _begin_worker_stop(app: web.Application) -> None:
    """Begin the worker's drain at once, beside the HTTP server's drain rather than after it.

    Otherwise ``serve`` would go on taking commands while its callbacks drain, and need both
    drains one after the other.
    """
    stop = app.get(WORKER_STOP)
    if stop is not None:
        stop.begin()


async def _admin_site_ctx(app: web.Application) -> AsyncIterator[None]:
    """The operations endpoints on ``BRIDGE_HTTP__ADMIN_PORT``."""
    settings = app[SETTINGS]
    admin = web.Application()
    # The same objects as the main app: readiness and metrics are the process's.
    admin[SETTINGS] = settings
    admin[METRICS] = app[METRICS]
    admin[PUBLISHER] = app[PUBLISHER]
    admin[READINESS] = app[READINESS]
    admin[NOT_READY_REASONS] = app[NOT_READY_REASONS]
    admin[STOPPED] = app[STOPPED]
    add_operations_routes(admin.router)
    add_json_fallbacks(admin.router)
    runner = BridgeAppRunner(
        admin, header_timeout=settings.http.header_timeout, access_log=None, handle_signals=False
    )
    # try: a stop signal can cancel the start-up half-way through this context's start.
    try:
        await runner.setup()
        # reuse_port: with --workers N every process serves it, like the callback port.
        site = web.TCPSite(runner, settings.http.host, settings.http.admin_port, reuse_port=True)
        await site.start()
        log.info("operations endpoints on %s:%s", settings.http.host, settings.http.admin_port)
        yield
    finally:
        await runner.cleanup()


def create_app(
    settings: Settings, *, receiver: bool = True, worker: bool = False
) -> web.Application:
    """Build the bridge's aiohttp application: receiver and/or worker, and operations endpoints."""
    # Before its first client: topics are created by the bridge's settings or by an operator.
    forbid_topic_auto_creation()
    read_any_header_name()
    app = web.Application(
        # The receiver enforces its own (configurable) limit and dead-letters what exceeds it.
        client_max_size=settings.http.max_body_bytes * 2,
        # Bodies stay as they came: a compressed body is refused (415), never inflated, so a
        # 100-byte "gzip bomb" costs 100 bytes (and so does its dead letter).
        handler_args={"auto_decompress": False, "lingering_time": LINGERING_TIME},
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[PUBLISHER] = Publisher(settings.kafka, app[METRICS])
    app[READINESS] = {}
    app[NOT_READY_REASONS] = {}
    app[STOPPED] = {}
    if settings.schemas.registry_url is not None:
        # First: a refusal leaves nothing started behind it.
        app.cleanup_ctx.append(_registry_ctx)
    # Before the Kafka clients, so aiokafka's logs stay folded until every one has stopped.
    app.cleanup_ctx.append(_broker_watch_ctx)
    app.cleanup_ctx.append(_publisher_ctx)
    app.on_shutdown.append(_on_shutdown)
    if settings.http.admin_port is None:
        add_operations_routes(app.router)
    else:
        # Before every other resource: cleaned up last, it reports not-ready during shutdown.
        app.cleanup_ctx.insert(0, _admin_site_ctx)
    if receiver:
        problem = receiver_auth_problem(settings)
        if problem is not None:
            raise SettingsError(problem)
        if not settings.callbacks.authenticated:
            log.warning(
                "callback authentication is OFF (BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED=true): "
                "anyone who reaches this receiver can put call events on %s",
                settings.topics.call_events,
            )
            app[METRICS].callbacks_unauthenticated.set(1)
        _warn_unsigned(settings, "callback", "BRIDGE_DEAD_LETTERS__CALLBACK_SIGNING_KEY")
        app.cleanup_ctx.append(_receiver_topics_ctx)
        correlator = None
        if settings.callbacks.correlation_wait > 0:
            correlator = app[CORRELATOR] = CallCorrelator(settings, app[METRICS])
            app.cleanup_ctx.append(_correlator_ctx)
            # Not ready while the ledger's look-back is read: a callback of a call placed just
            # before a restart must find it.
            app[READINESS]["correlation"] = lambda: correlator.ready
        app[RECEIVER] = CallbackReceiver(settings, app[PUBLISHER], app[METRICS], correlator)
        route = app.router.add_route("*", CALLBACK_PATH, app[RECEIVER].handle)
        app[KEEP_REFUSED] = _keep_refused_callbacks(app.router, route.resource, app[RECEIVER])
    if worker:
        _warn_unsigned(settings, "command", "BRIDGE_DEAD_LETTERS__COMMAND_SIGNING_KEY")
        app.cleanup_ctx.append(_worker_ctx)
        app.on_shutdown.append(_begin_worker_stop)
    add_json_fallbacks(app.router)  # after every other route
    # Only a process that runs the worker registers: the worker holds the FoneStorm token, so
    # the internet-facing receiver can run without it.
    if worker and settings.fonestorm.register_on_start:
        app.on_startup.append(_register_callbacks)
    app.on_startup.append(_freeze_heap)
    return app


def _keep_refused_callbacks(
    router: web.UrlDispatcher, callbacks: web.AbstractResource | None, receiver: CallbackReceiver
) -> KeepRefused:
    """Dead-letters a request refused before any handler ran when the router would have handed
    it to the receiver: what makes a request a callback is its route, as for every other."""

    async def keep(request: web.Request, error: CallbackError) -> web.StreamResponse | None:
        match = await router.resolve(request)
        if callbacks is None or match.route.resource is not callbacks:
            return None
        return await receiver.keep_refused(request, error)

    return keep


def _warn_unsigned(settings: Settings, source: str, variable: str) -> None:
    if settings.dead_letters.key_for(source) is None:
        log.warning(
            "%s is not set: dead letters of refused %ss are written unsigned, and "
            "`dead-letters replay` replays them only with --allow-unsigned",
            variable,
            source,
        )


async def _register_callbacks(app: web.Application) -> None:
    # A registration failure is logged, not fatal: callbacks may already point here, and
    # crash-looping on a FoneStorm outage would take the command worker down with it.
    try:
        await register_callbacks(app[SETTINGS])
    except (BridgeError, ValueError) as exc:
        log.error("registering callbacks failed: %s", exc)
