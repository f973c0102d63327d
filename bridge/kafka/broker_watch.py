"""Quiet Kafka client logs while a broker is away: one WARNING when it goes, one INFO when back.

aiokafka logs every failed attempt to reach a broker at ERROR, several a second per client
while a broker restarts. :class:`BrokerWatch` installs, at start-up, one filter on aiokafka's
loggers that folds those records (:mod:`bridge.kafka.broker_faults`) into two lines per broker
and the metrics ``bridge_kafka_broker_reachable`` and ``bridge_kafka_broker_disconnects_total``,
and logs a broker's answer that a leader moved (retried) at INFO; anything else aiokafka logs
passes as it is. aiokafka logs nothing when it reconnects, so a
broker is back when the watch's own probe (a connection from the producer's client) reaches it.

The records carry no client identity, so the state is the process's: one filter however many
apps (tests) run in the process, and every app's metrics told of each transition. It assumes
one Kafka cluster per process, as the bridge has.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from bridge.kafka.broker_faults import LOGGERS, BrokerStates, Echo, Moved, Outage, classify
from bridge.obs.metrics import Metrics
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Seconds between probes of the brokers that are away (and so the precision of "away for").
PROBE_INTERVAL = 1.0


class BrokerWatch:
    """One app's part: its metrics, and the Kafka client (``client()``) it probes brokers with."""

    def __init__(self, metrics: Metrics, client: Callable[[], Any]) -> None:
        self._metrics = metrics
        self._client = client
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Install the filter (if no other app has) and start probing."""
        _BrokerLogFilter.join(self)
        self._task = asyncio.create_task(self._probe_loop(), name="kafka-broker-watch")

    async def stop(self) -> None:
        """Stop probing; the last app to stop removes the filter."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        _BrokerLogFilter.leave(self)

    def address(self, node_id: str) -> str | None:
        """``host:port`` of ``node_id`` as the client's metadata has it."""
        client = self._client()
        broker = None if client is None else client.cluster.broker_metadata(_node(node_id))
        return None if broker is None else f"{broker.host}:{broker.port}"

    def went(self, outage: Outage) -> None:
        """Count a broker going away."""
        self._metrics.kafka_broker_reachable.labels(outage.node_id).set(0)
        self._metrics.kafka_broker_disconnects.labels(outage.node_id).inc()

    def came_back(self, node_id: str) -> None:
        """Mark a broker reachable."""
        self._metrics.kafka_broker_reachable.labels(node_id).set(1)

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            client = self._client()
            shared = _BrokerLogFilter.instance
            if client is None or shared is None:
                continue
            states = shared.states
            for broker in client.cluster.brokers():
                if not states.is_away(str(broker.nodeId)):
                    self.came_back(str(broker.nodeId))
            away = states.away()
            if not away:
                continue
            # client.ready() connects as the producer would; a failure is logged (and folded).
            answers = await asyncio.gather(
                *(client.ready(_node(n)) for n in away), return_exceptions=True
            )
            for node_id, answer in zip(away, answers, strict=True):
                if answer is True:
                    shared.reached(node_id)


def _node(node_id: str) -> int | str:
    return int(node_id) if node_id.isdigit() else node_id


class _BrokerLogFilter(logging.Filter):
    """The process's filter on aiokafka's loggers, shared by every :class:`BrokerWatch`."""

    instance: _BrokerLogFilter | None = None

    def __init__(self) -> None:
        super().__init__()
        self.states = BrokerStates()
        self.watches: list[BrokerWatch] = []

    @classmethod
    def join(cls, watch: BrokerWatch) -> None:
        if cls.instance is None:
            cls.instance = cls()
            for name in LOGGERS:
                logging.getLogger(name).addFilter(cls.instance)
        cls.instance.watches.append(watch)

    @classmethod
    def leave(cls, watch: BrokerWatch) -> None:
        shared = cls.instance
        if shared is None or watch not in shared.watches:
            return
        shared.watches.remove(watch)
        if not shared.watches:
            for name in LOGGERS:
                logging.getLogger(name).removeFilter(shared)
            cls.instance = None

    def filter(self, record: logging.LogRecord) -> bool:
        """Fold routine connection failures into the broker's state; keep every other record."""
        verdict = classify(record)
        if verdict is None:
            return True
        if isinstance(verdict, Echo):
            return not self.states.covers(verdict)
        if isinstance(verdict, Moved):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return True
        address = next(filter(None, (w.address(verdict.node_id) for w in self.watches)), None)
        outage = self.states.fault(verdict, time.monotonic(), address)
        if outage is not None:
            log.warning(
                "Kafka broker %s at %s is unreachable (%s); the Kafka client's retries are not "
                "logged until it is back",
                outage.node_id, outage.address or "an unknown address", outage.error,
            )  # fmt: skip
            for watch in self.watches:
                watch.went(outage)
        return False

    def reached(self, node_id: str) -> None:
        recovery = self.states.reached(node_id, time.monotonic())
        if recovery is None:
            return
        outage = recovery.outage
        log.info(
            "Kafka broker %s at %s is reachable again after %.1fs (%d Kafka client log lines "
            "about it left out)",
            node_id, outage.address or "an unknown address", recovery.away, outage.records,
        )  # fmt: skip
        for watch in self.watches:
            watch.came_back(node_id)
