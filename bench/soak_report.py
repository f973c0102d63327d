"""What the chaos soak (:mod:`bench.soak`) counts, the promises it checks, and its report.

Pure: the soak gathers the sandbox's record of calls and requests and the results and call
events off Kafka into a :class:`Report`; everything here is arithmetic on those.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import ROOT

#: Where ``bench/SOAK.md`` stops being written by the soak: what follows is kept by hand.
KEPT_BY_HAND = "<!-- Kept by hand: `make soak` rewrites everything above this line. -->"
#: What a command must not be, and how to tell from its calls and its distinct statuses.
PROMISES: tuple[tuple[str, Callable[[int, set[str]], bool]], ...] = (
    ("called more than once", lambda calls, statuses: calls > 1),
    ("without an outcome", lambda calls, statuses: not statuses),
    ("with more than one outcome", lambda calls, statuses: len(statuses) > 1),
    ("reported placed without a call", lambda calls, statuses: "placed" in statuses and not calls),
    (
        "called but not reported placed or in_doubt",
        lambda calls, statuses: calls > 0 and not statuses & {"placed", "in_doubt"},
    ),
)


def broken_promises(
    command_ids: Iterable[str], calls: Mapping[str, int], outcomes: Mapping[str, set[str]]
) -> list[str]:
    """A sentence per promise some commands broke, naming up to three of them."""
    found = []
    for broken, check in PROMISES:
        if bad := sorted(c for c in command_ids if check(calls[c], outcomes.get(c, set()))):
            found.append(f"{broken}: {len(bad)} commands ({', '.join(bad[:3])})")
    return found


#: The sandbox faults that create the call and then answer as if it might not exist.
AFTER_CREATE = ("fail_after_create", "break_body_after_create")


@dataclass
class SoakConfig:
    """How long and how hard."""

    commands: int = 3000
    chaos_seconds: float = 240.0
    interval: float = 5.0
    max_workers: int = 4
    # Low, so that the backlog flows through the whole chaos period.
    rate_limit: float = 5.0
    #: The workers' ``BRIDGE_WORKER__SESSION_TIMEOUT``: the broker's default minimum, so that a
    #: freeze past it stays short.
    session_timeout: float = 6.0
    settle_seconds: float = 300.0
    seed: int = 1
    out: Path = ROOT / "bench" / "out" / "soak"
    #: Checkout whose ``bridge`` the workers run: another version, for a before/after run.
    worker_dir: Path = ROOT


def bucket(n: int) -> str:
    """``0``, ``1`` or ``2+``: how the report groups counts per command."""
    return str(n) if n < 2 else "2+"


def outcome_key(statuses: Iterable[str]) -> str:
    """The distinct statuses of a command as one label (``(none)`` when it has none)."""
    return " + ".join(sorted(statuses)) or "(none)"


def why(message: str) -> str:
    """An error message without its numbers, ids and bodies, so equal reasons count together."""
    message = re.sub(r"\{.*\}", "{…}", re.sub(r"<[^>]*>", "<…>", message))
    return re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+(\.\d+)?", "N", message)[:240].replace("|", "/")


@dataclass
class Report:
    """What the soak did and what it found."""

    config: SoakConfig
    command_ids: list[str] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    #: Seconds each SIGSTOP lasted before its SIGCONT.
    freezes: list[float] = field(default_factory=list)
    calls_per_command: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, set[str]] = field(default_factory=dict)
    result_records: int = 0
    #: ``in_doubt`` outcomes by why (the result's ``error_message``, numbers left out).
    doubts: Counter[str] = field(default_factory=Counter)
    #: Command id -> the sandbox fault its create-call was answered with (after-create ones).
    after_create: dict[str, str] = field(default_factory=dict)
    #: Create-call requests the sandbox answered with an injected fault, by fault.
    faults_served: Counter[str] = field(default_factory=Counter)
    #: Command id -> call id of each ``CallPlaced`` published as reconciled.
    reconciled: dict[str, str] = field(default_factory=dict)
    lag: int = -1
    seconds: float = 0.0

    def calls_histogram(self) -> Counter[str]:
        """Commands by how many calls the sandbox saw for them (``0``, ``1``, ``2+``)."""
        return Counter(bucket(self.calls_per_command[c]) for c in self.command_ids)

    def outcomes_histogram(self) -> Counter[str]:
        """Commands by how many distinct outcomes they got (``0``, ``1``, ``2+``)."""
        return Counter(bucket(len(self.outcomes.get(c, ()))) for c in self.command_ids)

    def outcomes_by_calls(self) -> dict[str, Counter[str]]:
        """Outcome label -> commands with it by calls (``0``, ``1``, ``2+``)."""
        table: dict[str, Counter[str]] = {}
        for c in self.command_ids:
            row = table.setdefault(outcome_key(self.outcomes.get(c, ())), Counter())
            row[bucket(self.calls_per_command[c])] += 1
        return table

    def after_create_outcomes(self) -> Counter[tuple[str, str, str]]:
        """(fault, outcome label, calls bucket) -> commands, for the after-create faults."""
        return Counter(
            (fault, outcome_key(self.outcomes.get(c, ())), bucket(self.calls_per_command[c]))
            for c, fault in self.after_create.items()
        )

    @property
    def violations(self) -> list[str]:
        """Every broken promise, as a sentence."""
        found = []
        found += broken_promises(self.command_ids, self.calls_per_command, self.outcomes)
        if self.lag != 0:
            found.append(f"committed offsets are {self.lag} behind the end offsets")
        return found

    def markdown(self) -> str:
        """The figures, for ``bench/SOAK.md`` and the console."""
        c = self.config
        calls = self.calls_histogram()
        results = self.outcomes_histogram()
        lines = [
            "# Chaos soak of the command worker (`make soak`)",
            "",
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {self.seconds:.0f} s, seed {c.seed}: "
            f"`python -m bench.soak --commands {c.commands} --chaos-seconds {c.chaos_seconds:g} "
            f"--rate-limit {c.rate_limit:g} --seed {c.seed}`.",
            "",
            f"{c.commands} commands, rate limit {c.rate_limit:g}/s per worker, up to "
            f"{c.max_workers} workers, session timeout {c.session_timeout:g} s, default "
            "settings otherwise (ambiguous answers not retried); sandbox 3% 500s, 20 ms "
            "latency, 429, timeout and after-create bursts.",
            "",
            "| Chaos | Count |",
            "| --- | --- |",
            *(f"| {name} | {n} |" for name, n in sorted(self.actions.items())),
            *self._freeze_rows(),
            *(
                f"| create-calls answered `{f}` | {n} |"
                for f, n in sorted(self.faults_served.items())
            ),
            "",
            "| Calls per command | Commands |",
            "| --- | --- |",
            *(f"| {b} | {calls[b]} |" for b in ("0", "1", "2+")),
            f"| (calls made) | {sum(self.calls_per_command.values())} |",
            "",
            "| Outcomes per command | Commands |",
            "| --- | --- |",
            *(f"| {b} | {results[b]} |" for b in ("0", "1", "2+")),
            f"| (result records, incl. republications) | {self.result_records} |",
            "",
            "| Outcome | Commands | with 0 calls | with 1 call | with 2+ calls |",
            "| --- | --- | --- | --- | --- |",
            *(
                f"| `{key}` | {row.total()} | {row['0']} | {row['1']} | {row['2+']} |"
                for key, row in sorted(self.outcomes_by_calls().items())
            ),
            "",
            "| Why `in_doubt` | Commands |",
            "| --- | --- |",
            *(f"| {reason} | {n} |" for reason, n in self.doubts.most_common()),
            "",
            "| After-create fault | Outcome | Calls | Commands |",
            "| --- | --- | --- | --- |",
            *(
                f"| `{fault}` | `{key}` | {n_calls} | {n} |"
                for (fault, key, n_calls), n in sorted(self.after_create_outcomes().items())
            ),
            "",
            f"Reconciled `CallPlaced` events (a call reported after another worker's result): "
            f"{len(self.reconciled)}; committed offsets behind end offsets: {self.lag}.",
            "",
            "Violations: " + ("; ".join(self.violations) or "none") + ".",
            "",
        ]
        return "\n".join(lines)

    def _freeze_rows(self) -> list[str]:
        session = self.config.session_timeout
        past = sorted(s for s in self.freezes if s > session)
        within = sorted(s for s in self.freezes if s <= session)
        return [
            f"| SIGSTOP {label} ({session:g} s): frozen for | {s[0]:.1f} to {s[-1]:.1f} s |"
            for label, s in (
                ("past the session timeout", past),
                ("within the session timeout", within),
            )
            if s
        ]


def after_create_commands(requests: Iterable[Mapping[str, object]]) -> dict[str, str]:
    """Command id -> after-create fault, from the sandbox's request log (idempotency keys)."""
    return {
        str(r["idempotency_key"]): str(r["fault"])
        for r in requests
        if r.get("fault") in AFTER_CREATE and r.get("idempotency_key")
    }


def with_hand_kept(generated: str, existing: str) -> str:
    """``generated`` followed by what follows :data:`KEPT_BY_HAND` in ``existing``, if anything."""
    _, marker, kept = existing.partition(KEPT_BY_HAND)
    return f"{generated}\n{KEPT_BY_HAND}{kept}" if marker else generated
