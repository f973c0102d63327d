"""The command protocol under thousands of simulated schedules (see :mod:`tests.sim.world`).

No broker and no sandbox: the real worker code over in-memory Kafka and FoneStorm, on virtual
time, so each schedule takes milliseconds and replays exactly from its seed and
``PYTHONHASHSEED`` (string hashing orders some sets). Each chunk runs in a child process with
``PYTHONHASHSEED=0``, so CI explores the same schedules every time and a failure names a seed
that replays: ``PYTHONHASHSEED=0 python -m tests.sim --seed N``. A longer run is
``make sim SEEDS=100000``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.sim.world import simulate

#: Schedules CI explores, in chunks small enough for the per-test timeout.
SEEDS = int(os.environ.get("BRIDGE_SIM_SEEDS", "2000"))
CHUNK = 250
HASHSEED = "0"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "first", range(0, SEEDS, CHUNK), ids=lambda f: f"seeds {f}-{f + CHUNK - 1}"
)
def test_at_most_one_call_and_one_outcome_per_command(first: int) -> None:
    count = min(CHUNK, SEEDS - first)
    run = subprocess.run(
        [sys.executable, "-m", "tests.sim", "--seeds", str(count), "--start", str(first)],
        env={**os.environ, "PYTHONHASHSEED": HASHSEED},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, (
        f"schedules broke the protocol (replay one: PYTHONHASHSEED={HASHSEED} "
        f"python -m tests.sim --seed N)\n{run.stdout[-4000:]}{run.stderr[-4000:]}"
    )


def test_a_seed_replays_exactly() -> None:
    first, again = simulate(7), simulate(7)
    assert first.events == again.events
    assert first.calls == again.calls
