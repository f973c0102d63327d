"""The command worker as a resource: built, started, drained and stopped around a block.

The application (:mod:`bridge.app`) enters it in a cleanup context and registers its readiness.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from bridge.commands import destinations
from bridge.commands.ledger import Ledger
from bridge.commands.processor import CommandProcessor
from bridge.commands.worker import CommandWorker
from bridge.fonestorm.client import FoneStormClient, new_session
from bridge.kafka.live_brokers import wait_for_live_broker
from bridge.kafka.options import client_options
from bridge.kafka.publisher import Publisher
from bridge.kafka.starting import start_or_close
from bridge.kafka.topics import TopicWatch
from bridge.obs import http_spans
from bridge.obs.metrics import Metrics
from bridge.retrying import retry
from bridge.schema_registry.commands import CommandReader
from bridge.settings import Settings
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class RunningWorker(NamedTuple):
    """The worker of :func:`running_worker`, the ledger it works from (for readiness), and why
    its loop stopped (for liveness; empty while it runs)."""

    worker: CommandWorker
    ledger: Ledger
    stopped: Callable[[], str]


@asynccontextmanager
async def running_worker(
    settings: Settings,
    publisher: Publisher,
    metrics: Metrics,
    *,
    commands: CommandReader | None = None,
) -> AsyncIterator[RunningWorker]:
    """One FoneStorm session, the ledger, the consumer and the worker loop, while the block runs.

    The loop starts in the background (it waits for its topics and for Kafka); on the way out
    it is stopped, in-flight commands drain, and the consumer leaves its group.
    """
    closed, policy = destinations.policy_summary(
        settings.fonestorm.fonenumbers, settings.worker, settings.callbacks.default_region
    )
    # Fail closed is a configuration an operator must see at once, not at the first command.
    (log.warning if closed else log.info)("%s", policy)
    session = new_session(trace_configs=http_spans.client_trace_configs())
    ledger = Ledger(settings, publisher)
    processor = CommandProcessor(
        settings,
        publisher,
        FoneStormClient(session, settings.fonestorm),
        ledger,
        metrics,
        commands=commands,
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
    worker = CommandWorker(settings, consumer, processor, ledger, metrics)
    task = asyncio.create_task(
        _run(settings, publisher, worker, consumer, ledger), name="command-worker"
    )
    task.add_done_callback(_report_stop)
    try:
        yield RunningWorker(worker, ledger, lambda: _why_stopped(task))
    finally:
        await cancel_and_wait(task)
        # As long as a rebalance would give it: cut shorter, a call we know ends in_doubt.
        await worker.drain(settings.worker_drain_timeout)
        await consumer.stop()  # leaves the group, so partitions move on at once
        await ledger.stop()
        await session.close()
        log.info("worker stopped")


def _why_stopped(task: asyncio.Task[None]) -> str:
    if not task.done() or task.cancelled():
        return ""
    exc = task.exception()
    return "the worker loop ended" if exc is None else f"the worker loop failed: {exc!r}"


def _report_stop(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    # Commands are no longer consumed: say so at once, and fail liveness so the process is
    # restarted, rather than sit in the group holding its partitions.
    log.critical(
        "%s; no more commands are consumed, /healthz now fails",
        _why_stopped(task),
        exc_info=task.exception(),
    )


async def _run(
    settings: Settings,
    publisher: Publisher,
    worker: CommandWorker,
    consumer: AIOKafkaConsumer,
    ledger: Ledger,
) -> None:
    topics = settings.topics

    await TopicWatch(
        settings,
        [topics.place_call, topics.command_ledger, topics.place_call_results,
         topics.call_events, topics.dead_letters],
        what="the worker",
        on_change=publisher.set_missing_topics,
    ).wait()  # fmt: skip

    async def start() -> None:
        await ledger.start()
        # Retried on the same consumer: closed only when cancelled, not when start fails.
        await start_or_close(consumer.start, consumer.stop, close_on_error=False)

    async def failed(exc: BaseException) -> None:
        await ledger.stop()

    await retry(start, retry_on=KafkaError, what="starting the worker", on_failure=failed)
    # Joining the group begins with a coordinator lookup among the brokers the consumer knows,
    # which fails for good when it bootstrapped while Kafka named none (a fenced broker).
    await wait_for_live_broker(consumer._client, within=None, what="joining the group")
    worker.membership.attach(consumer)  # before the first JoinGroup: subscribe sends it
    consumer.subscribe([settings.topics.place_call], listener=worker.listener())
    log.info(
        "worker consuming %s as group %s", settings.topics.place_call, settings.worker.group_id
    )
    await worker.run()
