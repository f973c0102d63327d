"""Each promise a failover run checks is a violation when broken, from the counts alone."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.failover_report import Answer, FaultReport


def _report(**changes: object) -> FaultReport:
    """Two commands and two acknowledged callbacks, every promise kept."""
    report = FaultReport(
        "leader-kill",
        answers=[Answer(0.0, 0.1, 200, "e1"), Answer(0.0, 9.0, 200, "e2")],
        events=Counter({"e1": 1, "e2": 1}),
        command_ids=["c1", "c2"],
        calls_per_command=Counter({"c1": 1, "c2": 1}),
        results_per_command=Counter({"c1": 1, "c2": 1}),
        outcomes={"c1": {"placed"}, "c2": {"placed"}},
    )
    for name, value in changes.items():
        setattr(report, name, value)
    return report


@pytest.mark.parametrize(
    ("changes", "broken"),
    [
        ({}, None),
        ({"republished": 3}, None),  # the same result again: one result, published twice
        ({"events": Counter({"e1": 1})}, "acknowledged but not on the events topic: 1"),
        ({"client_errors": ["reset"]}, "callbacks without an HTTP answer: 1"),
        ({"answers": [Answer(0, 1, 500)]}, "answered neither 2xx nor 503: {500: 1}"),
        ({"calls_per_command": Counter({"c1": 2, "c2": 1})}, "called more than once: 1"),
        ({"results_per_command": Counter({"c1": 2, "c2": 1})}, "more than one distinct result"),
        (
            {"outcomes": {"c1": {"placed"}}, "calls_per_command": Counter({"c1": 1})},
            "without an outcome: 1",
        ),
        ({"lag": 4}, "committed offsets are 4 behind the end offsets"),
    ],
)
def test_each_broken_promise_is_a_violation(changes: dict[str, object], broken: str | None) -> None:
    violations = _report(**changes).violations
    if broken is None:
        assert violations == []
    else:
        assert len(violations) == 1
        assert violations[0].startswith(broken)


def test_503_is_a_missed_target_only_while_two_brokers_are_up() -> None:
    answers = [Answer(0.0, 0.01, 200, "e1")] * 2000 + [Answer(0.0, 12.0, 503)]
    kept = _report(answers=answers, events=Counter({"e1": 1}))
    lost = _report(answers=answers, events=Counter({"e1": 1}), quorum_kept=False)

    assert kept.violations == lost.violations == []
    assert kept.missed_targets == ["1 answered 503 with two of three brokers up"]
    assert lost.missed_targets == []
    assert (kept.latency(0.5), kept.latency(0.999), kept.max_wait) == (0.01, 0.01, 12.0)
