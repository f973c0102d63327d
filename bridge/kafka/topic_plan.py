"""Every topic the bridge uses, with the configuration it needs: the one declaration.

Pure: :func:`topic_plan` turns the settings and the size of the cluster into :class:`TopicSpec`
entries; :func:`drift` compares them with what a cluster has (:class:`TopicState`). The bridge's
own topic creation (``BRIDGE_KAFKA__CREATE_TOPICS``) and ``fonestorm-bridge topics`` both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.settings import Settings

#: Replication factor a cluster with at least this many brokers gets by default.
FULL_REPLICATION = 3
#: min.insync.replicas of a topic replicated FULL_REPLICATION times or more: one replica may be
#: down (a rolling restart) while acks=all writes still go on, and an acknowledged write is on
#: two brokers.
FULL_MIN_INSYNC = 2
#: Configs whose value is a comma-separated set (order does not matter).
_SET_VALUED = frozenset({"cleanup.policy"})


@dataclass(frozen=True)
class TopicSpec:
    """A topic as the bridge wants it."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicState:
    """A topic as the cluster has it; ``configs`` are effective values (defaults included)."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Drift:
    """One way an existing topic differs from its spec."""

    topic: str
    what: str  # "partitions", "replication factor" or a config name
    want: str
    have: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.what} is {self.have}, the plan wants {self.want}"


def replication_factor(settings: Settings, brokers: int) -> int:
    """The configured replication factor, else as many replicas as fit, up to three."""
    configured = settings.kafka.topic_replication_factor
    if configured is not None:
        return configured
    return max(1, min(FULL_REPLICATION, brokers))


def min_insync_replicas(settings: Settings, replicas: int) -> int | None:
    """The configured ``min.insync.replicas``, else 2 for three replicas or more, else None
    (the broker's default)."""
    configured = settings.kafka.topic_min_insync_replicas
    if configured is not None:
        return configured
    return FULL_MIN_INSYNC if replicas >= FULL_REPLICATION else None


def spec_for(settings: Settings, brokers: int, name: str, configs: Mapping[str, str]) -> TopicSpec:
    """A topic with the configured partitions and the replication that fits ``brokers``."""
    replicas = replication_factor(settings, brokers)
    insync = min_insync_replicas(settings, replicas)
    extra = {} if insync is None else {"min.insync.replicas": str(insync)}
    return TopicSpec(
        name=name,
        partitions=settings.kafka.topic_partitions,
        replication_factor=replicas,
        configs={**extra, **configs},
    )


def topic_plan(settings: Settings, brokers: int) -> list[TopicSpec]:
    """Every topic the bridge uses, for a cluster of ``brokers`` brokers."""
    topics = settings.topics
    # Records of one key are distinct events, commands or letters: compaction would lose them.
    kept = {"cleanup.policy": "delete"}
    # The ledger keeps the latest state per command (compaction) for as long as the worker
    # remembers command ids (deletion after BRIDGE_WORKER__LEDGER_RETENTION).
    ledger = {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(int(settings.worker.ledger_retention * 1000)),
        "min.compaction.lag.ms": "3600000",
    }
    configs = {
        topics.call_events: kept,
        topics.dead_letters: kept,
        # The latest replay of each dead letter is all `dead-letters replay` reads.
        topics.dead_letter_replays: {"cleanup.policy": "compact"},
        # An audit trail: every record kept for the topic's retention, none compacted away.
        topics.dead_letter_audit: kept,
        topics.place_call: kept,
        topics.place_call_results: kept,
        topics.command_ledger: ledger,
    }
    return [spec_for(settings, brokers, name, wanted) for name, wanted in configs.items()]


def plan_for(settings: Settings, brokers: int, names: list[str]) -> list[TopicSpec]:
    """The specs of ``names``: from the plan, or plain (no configs) for a topic not in it."""
    planned = {spec.name: spec for spec in topic_plan(settings, brokers)}
    return [planned.get(name) or spec_for(settings, brokers, name, {}) for name in names]


def _normal(name: str, value: str) -> object:
    if name in _SET_VALUED:
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    return value.strip()


def drift(spec: TopicSpec, state: TopicState) -> list[Drift]:
    """How ``state`` differs from ``spec``: partitions, replication factor, each planned config."""
    found: list[Drift] = []
    if state.partitions != spec.partitions:
        found.append(Drift(spec.name, "partitions", str(spec.partitions), str(state.partitions)))
    if state.replication_factor != spec.replication_factor:
        found.append(
            Drift(
                spec.name,
                "replication factor",
                str(spec.replication_factor),
                str(state.replication_factor),
            )
        )
    for name, want in spec.configs.items():
        have = state.configs.get(name)
        if have is None or _normal(name, have) != _normal(name, want):
            found.append(Drift(spec.name, name, want, "unset" if have is None else have))
    return found


def plan_drift(
    plan: list[TopicSpec], existing: Mapping[str, TopicState]
) -> tuple[list[str], list[Drift]]:
    """The planned topics missing from ``existing``, and the drift of those present."""
    missing = [spec.name for spec in plan if spec.name not in existing]
    found = [d for spec in plan if spec.name in existing for d in drift(spec, existing[spec.name])]
    return missing, found
