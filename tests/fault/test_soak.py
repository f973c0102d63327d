"""A short chaos soak of the command worker (``make soak`` runs the long one).

Worker processes join, leave, are SIGKILLed and frozen past their session, the broker restarts
once and the sandbox injects faults, some after creating the call, while a backlog flows; the
promises are checked from the sandbox's own record of calls and from the results topic (see
:mod:`bench.soak`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import AFTER_CREATE_BURST, LONG_FREEZE, SIGKILL, SIGTERM, Soak, SoakConfig
from bench.soak_report import Report

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.mark.timeout(400)
async def test_short_chaos_soak_keeps_every_promise(tmp_path: Path) -> None:
    config = SoakConfig(
        commands=300,
        chaos_seconds=45,
        interval=4,
        rate_limit=3,
        settle_seconds=180,
        seed=7,
        out=tmp_path,
    )
    report = await Soak(config).run()
    print(report.markdown())
    assert report.violations == []
    assert report.actions["Kafka restarted"] == 1
    assert report.actions[SIGKILL] >= 1
    assert report.actions[SIGTERM] >= 1
    assert report.actions[LONG_FREEZE] >= 1
    assert max(report.freezes) > config.session_timeout
    assert report.actions[AFTER_CREATE_BURST] >= 1
    assert report.faults_served["fail_after_create"] >= 1
    # Not retried by default: each such command ends in_doubt over the one call it made.
    assert set(report.after_create_outcomes()) <= {
        ("fail_after_create", "in_doubt", "1"),
        ("break_body_after_create", "in_doubt", "1"),
    }
    assert sum(report.calls_per_command.values()) > 0


@pytest.mark.parametrize(
    ("calls", "statuses", "broken"),
    [
        (1, {"placed"}, None),
        (0, {"in_doubt"}, None),
        (1, {"in_doubt"}, None),
        (0, {"failed"}, None),
        (2, {"placed"}, "called more than once"),
        (0, set(), "without an outcome"),
        (1, {"placed", "in_doubt"}, "with more than one outcome"),
        (0, {"placed"}, "reported placed without a call"),
        (1, {"failed"}, "called but not reported placed or in_doubt"),
    ],
)
def test_each_broken_promise_is_a_violation(
    calls: int, statuses: set[str], broken: str | None
) -> None:
    report = Report(SoakConfig(commands=2), command_ids=["c", "ok"], lag=0)
    report.calls_per_command.update({"c": calls, "ok": 1} if calls else {"ok": 1})
    report.outcomes = {"c": statuses, "ok": {"placed"}}
    expected = [] if broken is None else [f"{broken}: 1 commands (c)"]
    assert report.violations == expected
