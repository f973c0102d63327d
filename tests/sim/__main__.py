"""``python -m tests.sim``: explore many schedules, or replay one with its event log.

python -m tests.sim --seeds 100000 [--start 0]
python -m tests.sim --seed 1234
python -m tests.sim --seeds 1000 --no-ledger-growth
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from tests.sim.world import simulate


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__)
    parser.add_argument("--seed", type=int, help="replay this one schedule and print its log")
    parser.add_argument("--seeds", type=int, default=10_000, help="schedules to explore")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument(
        "--ledger-growth",
        action="store_true",
        help="add partitions to the ledger in some schedules",
    )
    args = parser.parse_args()
    if args.seed is not None:
        report = simulate(args.seed, ledger_growth=args.ledger_growth)
        print(report.describe())
        return 1 if report.violations else 0
    started = time.perf_counter()
    failed: list[int] = []
    calls: Counter[int] = Counter()
    for seed in range(args.start, args.start + args.seeds):
        report = simulate(seed, ledger_growth=args.ledger_growth)
        calls.update(report.calls.values())
        if report.violations:
            failed.append(seed)
            print(f"seed {seed}: {'; '.join(report.violations)}", flush=True)
        if (seed - args.start + 1) % 1000 == 0:
            print(f"{seed - args.start + 1} schedules, {len(failed)} failed", flush=True)
    took = time.perf_counter() - started
    print(
        f"{args.seeds} schedules in {took:.0f}s: {len(failed)} failed; commands by calls made: "
        f"{dict(sorted(calls.items()))}"
    )
    if failed:
        print(f"replay: python -m tests.sim --seed {failed[0]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
