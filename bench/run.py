"""``make bench``: the bridge against its own stack's limits, on this machine, in one run.

Everything here talks to 127.0.0.1 only, and every load is bounded in time (wrk ``-d``) and
count (command backlogs). Writes ``bench/RESULTS.md`` and ``bench/latency.png``.

    .venv/bin/python bench/run.py [--quick] [--no-profile] [--only mixes|tracing|commands|ledger]
                                  [--worker-env NAME=VALUE ...]

Phases (all against one dedicated ``scripts/local-kafka`` broker started here, whose command
ledger and results topics are first seeded with the outbound calls "placed by the bridge"):

1. callbacks in: ``bare`` / ``naive`` (bench/servers.py) / the bridge receiver
   (``python -m bridge.cli receiver``, real settings), wrk at 50 connections (median of 3),
   then a fixed-rate sweep (fractions of the bridge's maximum) for the latency chart;
2. the bridge with ``--workers 2``; throughput against body size;
3. mixes: inbound, outbound placed by the bridge, outbound not placed by it and the mixed load,
   bridge / naive / bare interleaved in one run; the not-placed mix at half the bridge's rate;
4. tracing: the receiver untraced, with 1% of callbacks sampled and with all, side by side;
5. Kafka holds every acknowledged callback (multiset of event ids, nothing missing);
6. commands out: 20,000 commands against the sandbox at 20 ms API latency; then the worker's
   peak RSS with a 100,000-command backlog;
7. the worker's memory per remembered command id: 1,000,000 ids through the ledger, in-process
   (``bench.ledger_memory``, no Kafka).

``--only mixes`` runs phases 3 and 5 alone and prints the mixes table instead of writing
RESULTS.md (for trying changes to the receiver or the load quickly); ``--only tracing`` does the
same with phase 4 (after warming the broker up). ``--only commands`` runs
the 20,000-command run and the lowered in-flight one of phase 6 and prints their figures;
``--only ledger`` runs phase 7 and prints its row;
``--worker-env`` adds a ``BRIDGE_*`` setting to every worker (e.g. to compare a setting).

This module is the entry point (flags and the order of the phases); the rest of ``bench/`` is
split by role: ``harness`` (processes, ports, the broker), ``wrk`` (load and its numbers),
``config`` (knobs, targets, ``Findings``), ``callbacks_in`` (phases 1, 2 and 5), ``mixes``
(phase 3), ``tracing`` (phase 4), ``commands_out`` (phase 6), ``report`` (RESULTS.md and the
chart; the prose is ``NOTES.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

if not __package__:  # `python bench/run.py` (make bench): import `bench` from the repo root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import ledger_memory
from bench.callbacks_in import (
    DLQ,
    EVENTS,
    LEDGER_TOPIC,
    NAIVE,
    RESULTS_TOPIC,
    callbacks_in,
    seed_placed,
    verify,
    warm_broker,
)
from bench.commands_out import commands_out
from bench.config import LOW_IN_FLIGHT, WORKER_EXTRA, Findings
from bench.harness import BENCH, PY_SPY, Kafka, create_topics, log
from bench.mixes import mixes
from bench.report import chart, ledger_memory_row, mixes_section, report
from bench.tracing import section as tracing_section
from bench.tracing import tracing
from tests.support.ports import free_ports


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short runs, for trying it out")
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the py-spy profile of the receiver"
    )
    parser.add_argument(
        "--only",
        choices=["mixes", "tracing", "commands", "ledger"],
        help="run only this phase (and the check that Kafka holds every callback); print its "
        "table, leave RESULTS.md alone",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a BRIDGE_* setting for every worker of phase 6 (repeatable)",
    )
    return parser.parse_args()


async def main() -> int:
    args = _arguments()
    WORKER_EXTRA.update(item.split("=", 1) for item in args.worker_env)
    f = Findings(quick=args.quick)
    if args.only == "ledger":  # in-process, no Kafka
        f.ledger_memory = ledger_memory.run(f.ledger_ids)
        print(ledger_memory_row(f), flush=True)
        return 0
    if shutil.which("wrk") is None:
        log("wrk is missing: run bench/ensure-wrk (make bench does)")
        return 2
    try:
        import matplotlib  # noqa: F401, PLC0415 - fail now, not after minutes of load
    except ImportError:
        log("matplotlib is missing (it draws bench/latency.png): pip install matplotlib")
        return 2
    work = BENCH / "out"
    shutil.rmtree(work, ignore_errors=True)
    logs = work / "logs"
    logs.mkdir(parents=True)
    kafka = Kafka(f"bench-{os.getpid()}", *free_ports(2))
    log(f"starting Kafka instance {kafka.name} on {kafka.bootstrap}")
    kafka.start()
    try:
        await create_topics(
            kafka.bootstrap,
            [EVENTS, DLQ, NAIVE, RESULTS_TOPIC, LEDGER_TOPIC],
            compacted=[LEDGER_TOPIC],
        )
        await seed_placed(kafka)
        if args.only:
            await only(args.only, f, kafka, logs)
            log(f"--only {args.only}: {(time.monotonic() - f.started):.0f}s; RESULTS.md left alone")
            return 0
        profile = not args.no_profile and bool(shutil.which("py-spy") or PY_SPY.exists())
        await callbacks_in(f, kafka, logs, profile)
        await mixes(f, kafka, logs)
        await tracing(f, kafka, logs)
        await verify(f, kafka)
        f.commands = await commands_out(f, kafka, logs, 2_000 if args.quick else 20_000, "c20k")
        f.commands_2p = await commands_out(
            f, kafka, logs, 2_000 if args.quick else 12_000, "c12k2p", processes=2
        )
        f.commands_low = await commands_out(
            f, kafka, logs, 2_000 if args.quick else 6_000, "c6k", in_flight=LOW_IN_FLIGHT
        )
        f.backlog = await commands_out(f, kafka, logs, 10_000 if args.quick else 100_000, "c100k")
    finally:
        kafka.stop()
    log(f"the worker's memory per remembered command id ({f.ledger_ids:,} ids)")
    f.ledger_memory = ledger_memory.run(f.ledger_ids)
    chart(f, BENCH / "latency.png")
    command = "make bench" + (" (bench/run.py --quick)" if args.quick else "")
    report(f, BENCH / "RESULTS.md", command)
    log(f"wrote bench/RESULTS.md and bench/latency.png in {(time.monotonic() - f.started):.0f}s")
    return 0


async def only(phase: str, f: Findings, kafka: Kafka, logs: Path) -> None:
    """Run one phase (``--only``) and print its figures."""
    if phase == "mixes":
        await mixes(f, kafka, logs)
        await verify(f, kafka)
        print("\n".join(mixes_section(f)), flush=True)
    elif phase == "tracing":
        await warm_broker(kafka, logs)
        await tracing(f, kafka, logs)
        await verify(f, kafka)
        print("\n".join(tracing_section(f)), flush=True)
    elif phase == "commands":
        for run in (
            await commands_out(f, kafka, logs, 2_000 if f.quick else 20_000, "c20k"),
            await commands_out(
                f, kafka, logs, 2_000 if f.quick else 6_000, "c6k", in_flight=LOW_IN_FLIGHT
            ),
        ):
            print(
                f"{run['in_flight']} in flight: {run['rate']:,.0f}/s = {run['ratio']:.2f} x "
                f"{run['limit']:,.0f}/s, p50 {run['p50_ms']:.0f} ms, p99 {run['p99_ms']:.0f} ms",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
