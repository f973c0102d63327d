"""What a run is: its knobs and targets, and ``Findings``, the record the phases fill.

The phases read the knobs to drive load and the report prints the same ones, so RESULTS.md
states what was run. ``Findings`` also holds what ``--quick`` shortens: repetitions, durations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.wrk import WrkResult

POOL = 20_000  # outbound calls "placed by the bridge" (their ledger entries are seeded)
SIZES = [0, 1024, 4096, 16384, 61440]  # JSON padding bytes (0 = a plain ~250-byte callback)
RATE_FRACTIONS = [0.25, 0.5, 0.75, 0.9, 1.1]
SANDBOX_LATENCY = 0.02
MAX_IN_FLIGHT = 64  # the default
LOW_IN_FLIGHT = 16  # an extra run where the in-flight bound, not the CPU, is the limit
RATE_LIMIT = 100_000.0
WORKER_EXTRA: dict[str, str] = {}  # more BRIDGE_* settings for the worker (none by default)

TARGET_NAIVE_RATIO = 0.8
TARGET_MIX_NAIVE_RATIO = 0.7  # every mix of the "mixes" phase, bridge against naive
TARGET_NOT_PLACED_VS_INBOUND = 0.95  # outbound calls the bridge did not place against inbound
TARGET_P99_MS = 10.0
TARGET_COMMANDS_RATIO = 0.5
TARGET_RSS_MB = 200.0
TARGET_LEDGER_BYTES_PER_ID = 100.0  # the worker's memory per remembered command id
LEDGER_IDS = 1_000_000
# The receiver traced (OTLP/HTTP to a local sink) against untraced, same run ("tracing" phase).
TARGET_TRACED_SAMPLED_RATIO = 0.9  # 1% of callbacks sampled: at most 10% below untraced
TARGET_TRACED_ALL_RATIO = 0.5  # every callback sampled: at most 50% below


@dataclass
class Findings:
    quick: bool
    max: dict[str, dict[str, float]] = field(default_factory=dict)
    half: dict[str, dict[str, float]] = field(default_factory=dict)
    sweep: dict[str, list[WrkResult]] = field(default_factory=dict)
    scaling: dict[int, dict[str, float]] = field(default_factory=dict)
    sizes: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    # mix -> server kind -> summarised full-speed runs (the "mixes" phase)
    mixes: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # the bridge at half its maximum of the outbound-not-placed mix
    not_placed_half: dict[str, float] = field(default_factory=dict)
    inbound_half: dict[str, float] = field(default_factory=dict)  # same rate, for reference
    # mix -> bridge / naive of each repetition (the two runs next to each other in time)
    mix_ratios: dict[str, list[float]] = field(default_factory=dict)
    # bridge_callback_correlations_total by how, "tags missed", and the ledger rounds ("count",
    # "sum" of bridge_ledger_round_seconds), after the full-speed runs
    correlations: dict[str, float] = field(default_factory=dict)
    # bridge outbound-not-placed / bridge inbound, each repetition and each extra pair
    not_placed_ratios: list[float] = field(default_factory=list)
    # the extra pairs' receiver and broker CPU per callback (us), by mix: median over pairs
    not_placed_costs: dict[str, dict[str, float]] = field(default_factory=dict)
    # the "tracing" phase: receiver kind -> summarised full-speed runs, at half rate, and
    # traced / untraced of each repetition by traced kind
    tracing: dict[str, dict[str, float]] = field(default_factory=dict)
    tracing_half: dict[str, dict[str, float]] = field(default_factory=dict)
    tracing_ratios: dict[str, list[float]] = field(default_factory=dict)
    verification: dict[str, int] = field(default_factory=dict)
    commands: dict[str, Any] = field(default_factory=dict)
    commands_low: dict[str, Any] = field(default_factory=dict)
    commands_2p: dict[str, Any] = field(default_factory=dict)
    backlog: dict[str, Any] = field(default_factory=dict)
    # bench.ledger_memory: RSS growth per remembered command id
    ledger_memory: dict[str, float] = field(default_factory=dict)
    profile: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def ledger_ids(self) -> int:
        """Command ids fed to the ledger to measure its memory per id."""
        return LEDGER_IDS // 10 if self.quick else LEDGER_IDS

    @property
    def reps(self) -> int:
        return 1 if self.quick else 3

    @property
    def seconds(self) -> float:
        return 2.0 if self.quick else 5.0

    @property
    def sweep_seconds(self) -> float:
        return 2.0 if self.quick else 4.0

    @property
    def mix_reps(self) -> int:
        """Repetitions of the "mixes" phase: more than elsewhere, its ratios are the targets."""
        return 1 if self.quick else 5

    @property
    def not_placed_pairs(self) -> int:
        """Extra bridge inbound / not-placed pairs: one pair's ratio swings by a fifth here."""
        return 1 if self.quick else 10

    @property
    def mix_seconds(self) -> float:
        """Each full-speed run of the "mixes" phase (4 mixes x 3 servers x ``reps`` of them)."""
        return 2.0 if self.quick else 4.0
