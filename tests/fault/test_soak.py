"""A short chaos soak of the command worker (``make soak`` runs the long one).

Worker processes join, leave and are SIGKILLed, the broker restarts once and the sandbox
injects faults while a backlog flows; the promises are checked from the sandbox's own record
of calls and from the results topic (see :mod:`bench.soak`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import Soak, SoakConfig

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
    assert report.actions["worker SIGKILLed"] >= 1
    assert report.actions["worker stopped (SIGTERM)"] >= 1
    assert sum(report.calls_per_command.values()) > 0
