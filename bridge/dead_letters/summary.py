"""Counting a replay: per-dead-letter lines, progress, the final summary, the metrics file text.

Pure (the caller passes clocks in and writes the text out), tested as tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from bridge.dead_letters.decision import Decision
from bridge.dead_letters.escaping import escape

#: Outcomes counted, in the order they are printed. ``unreadable``: not a dead letter at all.
OUTCOMES = ("replayed", "still_invalid", "already_replayed", "unreadable")
METRIC = "bridge_dead_letter_replays_total"
LAST_RUN = "bridge_dead_letter_replay_last_run_timestamp_seconds"
LAST_SUCCESS = "bridge_dead_letter_replay_last_run_success"
_WOULD = {"replayed": "would replay", "still_invalid": "still invalid"}
_SAID = {"replayed": "replayed", "still_invalid": "still invalid"}


@dataclass
class Tally:
    """What a replay did so far."""

    #: ``(source, outcome) -> count``; source ``unknown`` for unreadable records.
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: ``(reason_code as dead-lettered, outcome) -> count``.
    by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: New reason code of dead letters still invalid -> count, and one example each.
    still_invalid: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def read(self) -> int:
        """Dead letters (and unreadable records) looked at."""
        return sum(self.outcomes.values())

    def count(self, outcome: str) -> int:
        """How many had ``outcome``, any source."""
        return sum(n for (_, o), n in self.outcomes.items() if o == outcome)

    def add(self, decision: Decision) -> None:
        letter = decision.letter
        self.outcomes[letter.source, decision.outcome] += 1
        self.by_reason[letter.reason_code, decision.outcome] += 1
        if decision.outcome == "still_invalid" and decision.reason_code is not None:
            self.still_invalid[decision.reason_code] += 1
            self.examples.setdefault(
                decision.reason_code, f"{letter.dead_letter_id}: {decision.reason}"
            )

    def add_unreadable(self) -> None:
        self.outcomes["unknown", "unreadable"] += 1


def decision_line(decision: Decision, *, dry_run: bool) -> str:
    """One line per dead letter (``--dry-run``, ``--verbose``)."""
    letter = decision.letter
    outcome = _label(decision.outcome, dry_run=dry_run)
    line = f"{outcome:<16} {letter.dead_letter_id}  {letter.source:<8} {letter.reason_code}"
    if decision.outcome == "still_invalid":
        line = f"{line}  now {decision.reason_code}: {decision.reason}"
    else:
        line = f"{line}  {decision.what}"
    return escape(line)  # one line, whatever the dead letter's fields hold


def progress_line(tally: Tally) -> str:
    """The progress line written to stderr during long runs."""
    return (
        f"replay: {tally.read} read, {tally.count('replayed')} replayed, "
        f"{tally.count('still_invalid')} still invalid, "
        f"{tally.count('already_replayed')} already replayed"
    )


class Progress:
    """Says when a progress line is due: every ``every`` dead letters or ``interval`` seconds."""

    def __init__(self, started: float, *, every: int = 1000, interval: float = 2.0) -> None:
        self._every = every
        self._interval = interval
        self._last_time = started
        self._last_count = 0

    def due(self, count: int, now: float) -> bool:
        if count - self._last_count >= self._every or now - self._last_time >= self._interval:
            self._last_time, self._last_count = now, count
            return True
        return False


def _label(outcome: str, *, dry_run: bool) -> str:
    return (_WOULD if dry_run else _SAID).get(outcome, outcome.replace("_", " "))


def summary(tally: Tally, *, dry_run: bool) -> str:
    """The summary printed at the end of a replay."""
    head = "dry run, nothing produced" if dry_run else "replay finished"
    lines = [f"{head}: {tally.read} dead letter{'' if tally.read == 1 else 's'} read"]
    for outcome in OUTCOMES:
        by_source = {s: n for (s, o), n in sorted(tally.outcomes.items()) if o == outcome}
        line = f"  {_label(outcome, dry_run=dry_run):<17}{sum(by_source.values()):>6}"
        detail = ", ".join(f"{s} {n}" for s, n in by_source.items() if s != "unknown")
        lines.append(f"{line}  ({detail})" if detail else line)
    reasons = sorted({reason for reason, _ in tally.by_reason})
    if reasons:
        lines.append("by reason (as dead-lettered):")
        width = max(len(r) for r in reasons)
        for reason in reasons:
            parts = [
                f"{_label(outcome, dry_run=dry_run)} {n}"
                for outcome in OUTCOMES
                if (n := tally.by_reason[reason, outcome])
            ]
            lines.append(f"  {reason:<{width}}  {', '.join(parts)}")
    if tally.still_invalid:
        lines.append("still invalid, by today's reason:")
        for code, n in tally.still_invalid.most_common():
            lines.append(f"  {code} {n}, e.g. {tally.examples[code]}")
    # Each line is one line: a newline inside a field is escaped like any control character.
    return "\n".join(escape(line) for line in lines)


def parse_counts(text: str) -> dict[tuple[str, str], float]:
    """The ``bridge_dead_letter_replays_total`` samples of an earlier metrics file."""
    counts: dict[tuple[str, str], float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == METRIC:
                    labels = sample.labels
                    counts[labels.get("source", ""), labels.get("outcome", "")] = sample.value
    except ValueError:
        return {}  # not ours or damaged: start again rather than fail the replay
    return counts


def metrics_text(
    previous: Mapping[tuple[str, str], float], tally: Tally, *, finished_at: float, ok: bool
) -> str:
    """Prometheus text format for node-exporter's textfile collector.

    The counter adds this run to ``previous`` (what the file said before), so it only grows
    across runs and ``increase()`` over it counts replays, as it would for a scraped process.
    """
    counts = dict(previous)
    for key, n in tally.outcomes.items():
        counts[key] = counts.get(key, 0.0) + n
    lines = [
        f"# HELP {METRIC} Dead letters handled by `fonestorm-bridge dead-letters replay`, by "
        "source and outcome (summed over runs).",
        f"# TYPE {METRIC} counter",
        *(
            f'{METRIC}{{source="{source}",outcome="{outcome}"}} {int(value)}'
            for (source, outcome), value in sorted(counts.items())
        ),
        f"# HELP {LAST_RUN} When the last replay ended (Unix time).",
        f"# TYPE {LAST_RUN} gauge",
        f"{LAST_RUN} {finished_at:.3f}",
        f"# HELP {LAST_SUCCESS} 1 when the last replay completed, 0 when it failed.",
        f"# TYPE {LAST_SUCCESS} gauge",
        f"{LAST_SUCCESS} {int(ok)}",
    ]
    return "\n".join(lines) + "\n"
