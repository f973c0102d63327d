"""Operations endpoints (``/healthz``, ``/readyz``, ``/metrics``): on the callback port, or apart.

With ``BRIDGE_HTTP__ADMIN_PORT`` they are served only on that port, so the port that faces the
internet answers nothing but callbacks: no metrics for strangers to read, no readiness to probe.
"""

from __future__ import annotations

from aiohttp import web

from bridge.obs.metrics import CONTENT_TYPE
from bridge.web.appkeys import METRICS, NOT_READY_REASONS, PUBLISHER, READINESS, STOPPED


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the event loop answers and no background loop has died."""
    stopped = {name: why for name, check in request.app[STOPPED].items() if (why := check())}
    if stopped:
        return web.json_response({"status": "stopped", "stopped": stopped}, status=503)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: Kafka is reachable and every registered component is ready."""
    checks = {"kafka": request.app[PUBLISHER].ready}
    checks.update({name: check() for name, check in request.app[READINESS].items()})
    ready = all(checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
    reasons = {
        name: why
        for name, reason in request.app[NOT_READY_REASONS].items()
        if not checks.get(name, True) and (why := reason())
    }
    if reasons:
        body["reasons"] = reasons
    missing = request.app[PUBLISHER].missing_topics
    if missing:
        body["missing_topics"] = missing
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_operations_routes(router: web.UrlDispatcher) -> None:
    """``/healthz``, ``/readyz`` and ``/metrics`` on ``router``."""
    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)
    router.add_get("/metrics", metrics)
