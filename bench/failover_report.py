"""What a failover run (:mod:`bench.failover`) counts, the promises it checks, and its report.

Pure: the run gathers the receiver's answers, the events on Kafka, the sandbox's record of
calls and the results topic into a :class:`FaultReport`; everything here is arithmetic on those.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bench.soak_report import broken_promises

#: Targets of issue #23 for a fault during which two of three brokers stay up.
TARGET_P999 = 1.0
TARGET_MAX = 15.0


@dataclass(frozen=True)
class Answer:
    """One callback: when it was sent and answered (monotonic seconds), how, and its event id."""

    started: float
    ended: float
    status: int
    event_id: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class FaultReport:
    """One fault under load: what was done, what the receiver answered, what Kafka holds."""

    fault: str
    #: Whether two of three brokers stayed up throughout (then no 503 is expected).
    quorum_kept: bool = True
    #: When the run began (monotonic seconds; the answers' times are monotonic too).
    began: float = 0.0
    #: (seconds since the run began, what happened), in order.
    timeline: list[tuple[float, str]] = field(default_factory=list)
    #: Named moments of the fault (e.g. ``down``, ``up``), in seconds since the run began.
    moments: dict[str, float] = field(default_factory=dict)
    #: Calls the sandbox had made when the fault began (the backlog was flowing).
    calls_before_fault: int = 0
    answers: list[Answer] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    #: Event ids on the events topic, each with how many records carry it.
    events: Counter[str] = field(default_factory=Counter)
    #: (seconds since the run began, HTTP status of /readyz).
    readiness: list[tuple[float, int]] = field(default_factory=list)
    command_ids: list[str] = field(default_factory=list)
    calls_per_command: Counter[str] = field(default_factory=Counter)
    #: Distinct results (CloudEvent ids) per command, and the distinct statuses among them.
    results_per_command: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, set[str]] = field(default_factory=dict)
    #: Result records that repeat one already on the topic (same id: the worker publishes a
    #: command's result again when it takes the command over without its committed offset).
    republished: int = 0
    #: Commands not yet committed by the worker's group at the end (end offsets - committed).
    lag: int = 0
    seconds: float = 0.0

    @property
    def acked(self) -> list[Answer]:
        return [a for a in self.answers if 200 <= a.status < 300]

    @property
    def lost(self) -> list[str]:
        """Acknowledged event ids that are not on the events topic."""
        return [a.event_id or "?" for a in self.acked if not self.events.get(a.event_id or "")]

    @property
    def unavailable(self) -> list[Answer]:
        return [a for a in self.answers if a.status == 503]

    @property
    def other_statuses(self) -> Counter[int]:
        return Counter(
            a.status for a in self.answers if a.status != 503 and not 200 <= a.status < 300
        )

    def latency(self, q: float) -> float:
        """The ``q``-quantile of the acknowledged callbacks' answer times (seconds)."""
        return percentile([a.seconds for a in self.acked], q)

    @property
    def max_wait(self) -> float:
        """The longest any callback waited for its answer, whatever the answer."""
        return max((a.seconds for a in self.answers), default=0.0)

    @property
    def doubled(self) -> list[str]:
        return sorted(c for c in self.command_ids if self.calls_per_command[c] > 1)

    @property
    def results_histogram(self) -> Counter[int]:
        """How many commands have 0, 1, 2... distinct results."""
        return Counter(self.results_per_command[c] for c in self.command_ids)

    @property
    def violations(self) -> list[str]:
        """Every broken promise, as a sentence."""
        found = []
        if lost := self.lost:
            found.append(f"acknowledged but not on the events topic: {len(lost)} ({lost[:3]})")
        if self.client_errors:
            found.append(f"callbacks without an HTTP answer: {len(self.client_errors)}")
        if others := self.other_statuses:
            found.append(f"answered neither 2xx nor 503: {dict(others)}")
        found += broken_promises(self.command_ids, self.calls_per_command, self.outcomes)
        if bad := sorted(c for c in self.command_ids if self.results_per_command[c] > 1):
            found.append(f"more than one distinct result: {len(bad)} commands ({bad[:3]})")
        if self.lag != 0:
            found.append(f"committed offsets are {self.lag} behind the end offsets")
        return found

    @property
    def missed_targets(self) -> list[str]:
        """Latency and availability targets not met (not promises: figures to report)."""
        missed = []
        if self.quorum_kept and self.unavailable:
            missed.append(f"{len(self.unavailable)} answered 503 with two of three brokers up")
        if self.quorum_kept and self.latency(0.999) > TARGET_P999:
            missed.append(f"ack p99.9 {self.latency(0.999):.2f} s > {TARGET_P999:g} s")
        if self.max_wait >= TARGET_MAX:
            missed.append(f"a callback waited {self.max_wait:.1f} s >= {TARGET_MAX:g} s")
        return missed

    def row(self) -> str:
        """One Markdown table row (see :data:`TABLE_HEAD`)."""
        results = ", ".join(f"{n}: {count}" for n, count in sorted(self.results_histogram.items()))
        return (
            f"| {self.fault} | {len(self.acked)} | {len(self.lost)} | {len(self.unavailable)} "
            f"| {self.latency(0.5) * 1000:.0f} ms | {self.latency(0.99) * 1000:.0f} ms "
            f"| {self.latency(0.999) * 1000:.0f} ms | {self.max_wait:.2f} s "
            f"| {sum(1 for c in self.command_ids if self.calls_per_command[c])} "
            f"| {len(self.doubled)} | {results} | {self.lag} |"
        )

    def details(self) -> list[str]:
        """The timeline and the checks, as Markdown lines."""
        lines = [f"### {self.fault}", ""]
        lines += [f"- {at:6.1f} s  {what}" for at, what in self.timeline]
        ready = Counter(status for _, status in self.readiness)
        slow = sum(1 for a in self.answers if a.seconds > 1.0)
        outcomes = Counter(" + ".join(sorted(found)) for found in self.outcomes.values())
        lines += [
            "",
            f"Callbacks: {len(self.answers)} answered in {self.seconds:.0f} s "
            f"({dict(sorted(Counter(a.status for a in self.answers).items()))}), {slow} after "
            f"more than 1 s; /readyz polls: {dict(sorted(ready.items()))}.",
            f"Commands: {len(self.command_ids)}, {self.calls_before_fault} called before the "
            f"fault; outcomes {dict(sorted(outcomes.items()))}; results republished (same id): "
            f"{self.republished}.",
            f"Promises: {'; '.join(self.violations) or 'all kept'}.",
            f"Targets: {'; '.join(self.missed_targets) or 'all met'}.",
            "",
        ]
        return lines


TABLE_HEAD = [
    "| fault | acknowledged | lost | 503 | ack p50 | ack p99 | ack p99.9 | max wait "
    "| commands placed | doubled | results per command | lag |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
]
