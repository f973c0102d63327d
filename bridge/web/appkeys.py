"""Typed application keys shared by the app wiring and the components it starts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bridge.errors import CallbackError
from bridge.kafka.publisher import Publisher
from bridge.obs.metrics import Metrics
from bridge.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
PUBLISHER = web.AppKey("publisher", Publisher)
#: Readiness checks by name; ``/readyz`` is ready when all are true.
READINESS = web.AppKey("readiness", dict[str, Callable[[], bool]])
#: Why a readiness check of the same name is false (empty when there is nothing to say);
#: ``/readyz`` shows it under ``reasons``.
NOT_READY_REASONS = web.AppKey("not_ready_reasons", dict[str, Callable[[], str]])
#: Background work that must run for the life of the process, by name: why it stopped, or an
#: empty string while it runs. ``/healthz`` fails (so Kubernetes restarts the process) when any
#: has stopped.
STOPPED = web.AppKey("stopped", dict[str, Callable[[], str]])
#: Dead-letters a request the server refused before any handler ran, for the error given, if
#: it was a callback (the app's routes say); ``None`` when the server's own answer stands, else
#: the answer to send instead (a 503: the dead letter was not written).
KeepRefused = Callable[[web.Request, CallbackError], Awaitable[web.StreamResponse | None]]
KEEP_REFUSED: web.AppKey[KeepRefused] = web.AppKey("keep_refused")
