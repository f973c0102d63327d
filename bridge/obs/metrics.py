"""Prometheus metrics of one bridge process.

Each application gets its own :class:`CollectorRegistry`, so several apps in one process (tests,
``serve``) never collide on metric names.
"""

from __future__ import annotations

from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bridge.obs.loop_metrics import LoopCounter, LoopHistogram


class _Labelled(Protocol):
    def labels(self, *values: str) -> Any: ...


# Callback handling is a few ms when Kafka is healthy and up to the produce timeout when not.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """All metrics the bridge exports, registered on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # The three updated on every callback are lock-free (bridge.obs.loop_metrics).
        self.callbacks = LoopCounter(
            "bridge_callbacks",
            "Callbacks received, by delivery method, direction, status and outcome.",
            ["method", "direction", "status", "outcome"],
            registry=r,
        )
        self.callback_latency = LoopHistogram(
            "bridge_callback_duration_seconds",
            "Time from request start to response, by outcome.",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.produce_latency = LoopHistogram(
            "bridge_produce_duration_seconds",
            "Time from send to broker acknowledgement, by topic.",
            ["topic"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.correlations = LoopCounter(
            "bridge_callback_correlations",
            "Outbound callbacks of calls not yet known as placed by the bridge, by how their "
            "command was looked up: at_once (the ledger read was recent enough), round_trip "
            "(waited for one ListOffsets), waited (for a placement in flight to the same "
            "numbers), timed_out (BRIDGE_CALLBACKS__CORRELATION_WAIT ran out), unavailable "
            "(Kafka did not answer).",
            ["how"],
            registry=r,
        )
        self.ledger_rounds = Histogram(
            "bridge_ledger_round_seconds",
            "Receivers: ListOffsets rounds that read the command ledger up to its end (which "
            "lets outbound callbacks of unknown calls be answered at once), by time from sending "
            "the request to having read up to the offsets it returned.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.callback_tags_missed = Counter(
            "bridge_callback_tags_missed",
            "Outbound callbacks produced without command_id whose call the command ledger "
            "named as placed by the bridge afterwards: its placement was read too late, or its "
            "done came after BRIDGE_CALLBACKS__CORRELATION_WAIT.",
            registry=r,
        )
        self.callback_doubts = Counter(
            "bridge_callback_doubts",
            "Outbound callbacks of calls no command names, between the numbers of in_doubt "
            "commands placed within BRIDGE_CALLBACKS__CORRELATION_DOUBT_WINDOW, by verdict: "
            "reconciled (tagged with the one command, CallPlaced published), ambiguous (more "
            "than one command could have placed the call) or unproven (the ledger was not read "
            "as of the callback): the last two are left untagged.",
            ["verdict"],
            registry=r,
        )
        self.http_refused = Counter(
            "bridge_http_refused",
            "HTTP requests refused before any handler ran, by reason: malformed "
            "(aiohttp's HTTP parser refused them), unsupported (no handler serves them: "
            "CONNECT, OPTIONS *, an HTTP version other than 1.x, an unknown Expect) or "
            "header_timeout (the request line and headers did not arrive within "
            "BRIDGE_HTTP__HEADER_TIMEOUT; the connection was closed without an answer).",
            ["reason"],
            registry=r,
        )
        self.produce_errors = Counter(
            "bridge_produce_errors",
            "Records Kafka did not acknowledge in time.",
            ["topic"],
            registry=r,
        )
        self.dead_letters = Counter(
            "bridge_dead_letters",
            "Records written to the dead-letter topic, by source and reason.",
            ["source", "reason"],
            registry=r,
        )
        self.kafka_ready = Gauge(
            "bridge_kafka_ready", "1 while the Kafka producer is connected.", registry=r
        )
        self.kafka_broker_reachable = Gauge(
            "bridge_kafka_broker_reachable",
            "Per Kafka broker of the cluster's metadata: 0 from a failed connection to it until "
            "a probe reaches it again (its client errors are then logged as one WARNING and "
            "one INFO), else 1.",
            ["node_id"],
            registry=r,
        )
        self.kafka_broker_disconnects = Counter(
            "bridge_kafka_broker_disconnects",
            "Times a Kafka broker became unreachable (a 1 to 0 step of "
            "bridge_kafka_broker_reachable).",
            ["node_id"],
            registry=r,
        )
        self.callbacks_unauthenticated = Gauge(
            "bridge_callbacks_unauthenticated",
            "1 when the receiver accepts callbacks without basic auth "
            "(BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED).",
            registry=r,
        )
        self.commands = Counter(
            "bridge_commands",
            "Place-call commands finished, by result status.",
            ["status"],
            registry=r,
        )
        self.command_latency = Histogram(
            "bridge_command_duration_seconds",
            "Time from command consumed to result published.",
            ["status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fonestorm_requests = Counter(
            "bridge_fonestorm_requests",
            "Requests to the FoneStorm API, by endpoint and outcome.",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.commands_in_flight = Gauge(
            "bridge_commands_in_flight", "Commands being processed now.", registry=r
        )
        self.command_lag = Gauge(
            "bridge_command_lag",
            "Place-call commands on this worker's partitions not yet read (end offsets minus "
            "positions, measured every few seconds).",
            registry=r,
        )
        self.ledger_entries = Gauge(
            "bridge_ledger_entries",
            "Command ids the worker remembers (one retention window of the ledger).",
            registry=r,
        )
        self.worker_ready = Gauge(
            "bridge_worker_ready", "1 while the command worker is consuming.", registry=r
        )

    def child(self, metric: _Labelled, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: ``labels()`` costs more than the update."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        """Text exposition of every metric."""
        return generate_latest(self.registry)
