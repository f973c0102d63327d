"""The command worker as an app resource: built, started, drained and stopped with the app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from bridge.commands import destinations
from bridge.commands.ledger import Ledger
from bridge.commands.processor import CommandProcessor
from bridge.commands.worker import CommandWorker
from bridge.fonestorm.client import FoneStormClient, new_session
from bridge.kafka.options import client_options
from bridge.kafka.starting import start_or_close
from bridge.kafka.topics import TopicWatch
from bridge.obs import tracing
from bridge.retrying import retry
from bridge.tasks import cancel_and_wait
from bridge.web.appkeys import METRICS, NOT_READY_REASONS, PUBLISHER, READINESS, SETTINGS

log = logging.getLogger(__name__)

WORKER = web.AppKey("worker", CommandWorker)


async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: one FoneStorm session, the ledger, the consumer and the worker loop."""
    settings = app[SETTINGS]
    closed, policy = destinations.policy_summary(
        settings.fonestorm.fonenumbers, settings.worker, settings.callbacks.default_region
    )
    # Fail closed is a configuration an operator must see at once, not at the first command.
    (log.warning if closed else log.info)("%s", policy)
    session = new_session(trace_configs=tracing.client_trace_configs())
    ledger = Ledger(settings, app[PUBLISHER])
    processor = CommandProcessor(
        settings, app[PUBLISHER], FoneStormClient(session, settings.fonestorm), ledger, app[METRICS]
    )
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka),
        group_id=settings.worker.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.worker.session_timeout * 1000),
        # A third of the session, as Kafka advises: a job checks that a heartbeat answered
        # within the session (bridge.commands.membership), and this keeps one at hand.
        heartbeat_interval_ms=int(settings.worker.session_timeout * 1000 / 3),
        # Not aiokafka's default (the session timeout): a revocation waits for create-call
        # requests already sent, and that needs longer than 10 s (see CommandWorker.release).
        rebalance_timeout_ms=int(settings.worker.rebalance_timeout * 1000),
        max_poll_interval_ms=int(settings.worker.max_poll_interval * 1000),
    )
    worker = app[WORKER] = CommandWorker(settings, consumer, processor, ledger, app[METRICS])
    app[READINESS]["worker"] = lambda: worker.ready
    # Not ready while it works from a stale copy of the ledger: newly assigned partitions
    # wait for it to catch up, so they stand still until it reads again.
    app[READINESS]["ledger"] = lambda: ledger.following
    app[NOT_READY_REASONS]["worker"] = lambda: worker.not_ready_reason
    task = asyncio.create_task(_run(app, worker, consumer, ledger), name="command-worker")
    try:
        yield
    finally:
        await cancel_and_wait(task)
        await worker.drain(settings.http.shutdown_timeout)
        await consumer.stop()  # leaves the group, so partitions move on at once
        await ledger.stop()
        await session.close()
        log.info("worker stopped")


async def _run(
    app: web.Application, worker: CommandWorker, consumer: AIOKafkaConsumer, ledger: Ledger
) -> None:
    settings = app[SETTINGS]
    topics = settings.topics

    await TopicWatch(
        settings,
        [topics.place_call, topics.command_ledger, topics.place_call_results,
         topics.call_events, topics.dead_letters],
        what="the worker",
        on_change=app[PUBLISHER].set_missing_topics,
    ).wait()  # fmt: skip

    async def start() -> None:
        await ledger.start()
        # Retried on the same consumer: closed only when cancelled, not when start fails.
        await start_or_close(consumer.start, consumer.stop, close_on_error=False)

    async def failed(exc: BaseException) -> None:
        await ledger.stop()

    await retry(start, retry_on=KafkaError, what="starting the worker", on_failure=failed)
    worker.membership.attach(consumer)  # before the first JoinGroup: subscribe sends it
    consumer.subscribe([settings.topics.place_call], listener=worker.listener())
    log.info(
        "worker consuming %s as group %s", settings.topics.place_call, settings.worker.group_id
    )
    await worker.run()
