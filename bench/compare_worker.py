"""Commands per second of the worker of another checkout against this one, in the same run.

    .venv/bin/python -m bench.compare_worker --other-dir /path/to/other/checkout [--rounds 2]
        [--in-flight 64]

One dedicated broker; each round runs the 20,000-command phase of ``make bench`` (64 in
flight unless ``--in-flight``, the sandbox at 20 ms latency) with the other checkout's worker,
then with this one's, so the two share the machine's state as closely as alternation allows.
Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import commands_out, harness
from bench.config import Findings
from tests.support.ports import free_ports


def _spawn_from(other: Path) -> Callable[..., Awaitable[harness.Proc]]:
    original = harness.spawn

    async def spawn(
        name: str, args: list[str], env: dict[str, str], logs: Path, cwd: Path = harness.ROOT
    ) -> harness.Proc:
        if name.startswith("worker-other"):
            # The other checkout's bridge package first on the path, run from its folder.
            return await original(name, args, {**env, "PYTHONPATH": str(other)}, logs, cwd=other)
        return await original(name, args, env, logs, cwd)

    return spawn


async def compare(
    other: Path, rounds: int, count: int, in_flight: int = commands_out.MAX_IN_FLIGHT
) -> list[tuple[str, int, dict[str, float]]]:
    """``(which, round, result)`` of every run, alternating the other checkout and this one."""
    logs = harness.BENCH / "out" / "compare"
    logs.mkdir(parents=True, exist_ok=True)
    commands_out.spawn = _spawn_from(other)
    kafka = harness.Kafka("compare", *free_ports(2))
    kafka.start()
    runs = []
    try:
        for n in range(rounds):
            for which in ("other", "this"):
                result = await commands_out.commands_out(
                    Findings(quick=False), kafka, logs, count, f"{which}{n}", in_flight=in_flight
                )
                runs.append((which, n, result))
                harness.log(
                    f"{which} round {n}: {result['rate']:.0f} commands/s, "
                    f"p99 {result['p99_ms']:.0f} ms, statuses {result['statuses']}"
                )
    finally:
        kafka.stop()
    return runs


def main() -> None:
    """Parse the flags, run, print one line per run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--other-dir", type=Path, required=True, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument(
        "--in-flight", type=int, default=commands_out.MAX_IN_FLIGHT, help="worker max_in_flight"
    )
    args = parser.parse_args()
    for which, n, result in asyncio.run(
        compare(args.other_dir.resolve(), args.rounds, args.commands, args.in_flight)
    ):
        print(f"{which}\t{n}\t{result['rate']:.0f}/s\tp99 {result['p99_ms']:.0f} ms")


if __name__ == "__main__":
    main()
