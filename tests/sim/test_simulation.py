"""The command protocol under thousands of simulated schedules (see :mod:`tests.sim.world`).

No broker and no sandbox: the real worker code over in-memory Kafka and FoneStorm, on virtual
time, so each schedule takes milliseconds and replays exactly from its seed. A longer run is
``make sim SEEDS=100000``; a failing seed is replayed, with its whole event log, by
``python -m tests.sim --seed N``.
"""

from __future__ import annotations

import os

import pytest

from tests.sim.world import simulate

#: Schedules CI explores, in chunks small enough for the per-test timeout.
SEEDS = int(os.environ.get("BRIDGE_SIM_SEEDS", "2000"))
CHUNK = 250


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "first", range(0, SEEDS, CHUNK), ids=lambda f: f"seeds {f}-{f + CHUNK - 1}"
)
def test_at_most_one_call_and_one_outcome_per_command(first: int) -> None:
    failed = []
    for seed in range(first, min(first + CHUNK, SEEDS)):
        report = simulate(seed)
        if report.violations:
            failed.append(report)
    hashseed = os.environ.get("PYTHONHASHSEED", "random")
    assert not failed, (
        f"{len(failed)} schedules broke the protocol (replay one: PYTHONHASHSEED={hashseed} "
        f"python -m tests.sim --seed N)\n\n" + "\n\n".join(r.describe() for r in failed[:3])
    )


def test_a_seed_replays_exactly() -> None:
    first, again = simulate(7), simulate(7)
    assert first.events == again.events
    assert first.calls == again.calls
