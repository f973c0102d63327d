"""The "mixes" phase: every callback mix, bridge / naive / bare side by side in one run.

The three servers are started once each and run together (only one is loaded at a time); then,
for each repetition, for each mix, for each server, one full-speed wrk run (every other
repetition in the reverse order), so drift (the machine, the broker's segments, other work on
the two cores) hits every cell alike. A ratio is the median over repetitions of the ratio of
two runs next to each other in time (:func:`run_order`). After that the bridge alone takes the
outbound-not-placed mix at half its maximum of that mix, for its p99.

Mixes (``callbacks.lua``; every one cycles GET / form POST / JSON POST and BEGIN / END):

* ``inbound``: every callback an inbound call, each with a new call id;
* ``outbound-placed``: every callback an outbound call the bridge placed (seeded ledger);
* ``outbound-not-placed``: outbound calls the ledger never saw (a fresh id prefix per run);
* ``mixed``: inbound and outbound-placed alternating (the mix of the other phases).
"""

from __future__ import annotations

import statistics
import uuid
from pathlib import Path

from bench.callbacks_in import ACKS, start_server
from bench.config import Findings
from bench.harness import Kafka, Proc, http_get, log
from bench.wrk import WrkResult, summarise, wrk

KINDS = ("bridge", "naive", "bare")
MIXES: dict[str, dict[str, str]] = {
    "inbound": {"BENCH_DIRECTION": "INBOUND"},
    "outbound-placed": {"BENCH_DIRECTION": "OUTBOUND"},
    "outbound-not-placed": {"BENCH_DIRECTION": "OUTBOUND"},  # + a fresh BENCH_OUT_PREFIX
    "mixed": {},
}
NOT_PLACED = "outbound-not-placed"


def run_order(rep: int) -> list[tuple[str, str]]:
    """Repetition ``rep``'s runs as (mix, server), so that every ratio compares neighbours.

    Within a mix the bridge runs next to naive; the bridge's not-placed run comes next to its
    inbound run (they meet at the boundary of the two mixes); every other repetition runs the
    whole list backwards, so that no server and no mix always goes first.
    """
    order: list[tuple[str, str]] = []
    for i, mix in enumerate(("inbound", NOT_PLACED, "outbound-placed", "mixed")):
        kinds = KINDS[::-1] if i % 2 == 0 else KINDS
        order.extend((mix, kind) for kind in kinds)
    return order if rep % 2 == 0 else order[::-1]


async def not_placed_pairs(f: Findings, proc: Proc, url: str, kafka_pid: int | None) -> None:
    """More bridge inbound / not-placed pairs (alternating which goes first) for their ratio.

    Also what each costs the receiver and the broker in CPU per callback, which the ratio
    of throughputs (50 connections, closed loop) only shows through the noise of the machine.
    """
    runs: dict[str, list[WrkResult]] = {"inbound": [], NOT_PLACED: []}
    for rep in range(f.not_placed_pairs):
        pair = ["inbound", NOT_PLACED] if rep % 2 == 0 else [NOT_PLACED, "inbound"]
        for mix in pair:
            run = await wrk(f"{mix} bridge pair {rep}", url, f.mix_seconds, proc, kafka_pid,
                            env=mix_env(mix), acks=ACKS)  # fmt: skip
            runs[mix].append(run)
        ratio = runs[NOT_PLACED][-1].rps / runs["inbound"][-1].rps
        f.not_placed_ratios.append(ratio)
        log(f"not placed / inbound, pair {rep}: {ratio:.2f}")
    f.not_placed_costs = {
        mix: {
            "receiver": statistics.median(1e6 * r.server_cpu / r.rps for r in results),
            "kafka": statistics.median(1e6 * r.kafka_cpu / r.rps for r in results),
        }
        for mix, results in runs.items()
    }


def mix_env(mix: str) -> dict[str, str]:
    """wrk's environment for one run of ``mix`` (not-placed: call ids nobody has seen)."""
    env = dict(MIXES[mix])
    if mix == NOT_PLACED:
        env["BENCH_OUT_PREFIX"] = f"elsewhere-{uuid.uuid4().hex[:8]}-"
    return env


async def correlations(url: str) -> dict[str, float]:
    """The bridge's lookups of outbound callbacks of unknown calls, by how, tags missed, and the
    ledger rounds (``count``, ``sum`` of their seconds)."""
    found: dict[str, float] = {}
    for line in (await http_get(f"{url}/metrics")).splitlines():
        if line.startswith(CORRELATIONS):
            how = line.removeprefix(CORRELATIONS).split('"', 1)[0]
            found[how] = float(line.split()[-1])
        elif line.startswith(MISSED + " "):
            found["tags missed"] = float(line.split()[-1])
        elif line.startswith((ROUNDS + "_count ", ROUNDS + "_sum ")):
            found[line.split()[0].removeprefix(ROUNDS + "_")] = float(line.split()[-1])
    return found


CORRELATIONS = 'bridge_callback_correlations_total{how="'
MISSED = "bridge_callback_tags_missed_total"
ROUNDS = "bridge_ledger_round_seconds"
#: Keys of :func:`correlations` that are not lookups.
NOT_LOOKUPS = ("tags missed", "count", "sum")


async def mixes(f: Findings, kafka: Kafka, logs: Path) -> None:
    kafka_pid = kafka.pid()
    servers: dict[str, tuple[Proc, str]] = {}
    try:
        for kind in KINDS:
            servers[kind] = await start_server(kind, kafka, logs)
        for kind, (proc, url) in servers.items():
            acks = ACKS if kind == "bridge" else None
            await wrk(f"mixes warm-up {kind}", url, 3, proc, kafka_pid, acks=acks)
        runs: dict[str, dict[str, list[WrkResult]]] = {m: {k: [] for k in KINDS} for m in MIXES}
        for rep in range(f.mix_reps):
            for mix, kind in run_order(rep):
                proc, url = servers[kind]
                run = await wrk(
                    f"{mix} {kind} {rep}",
                    url,
                    f.mix_seconds,
                    proc,
                    kafka_pid,
                    env=mix_env(mix),
                    acks=ACKS if kind == "bridge" else None,
                )
                runs[mix][kind].append(run)
                log(f"{mix}: {kind} {run.rps:.0f} req/s, p99 {run.p99:.1f} ms, "
                    f"{run.errors} errors")  # fmt: skip
        f.mixes = {mix: {kind: summarise(r) for kind, r in by.items()} for mix, by in runs.items()}
        # Paired: the machine's speed drifts by a third over minutes here, and a bridge run and
        # the naive run beside it see the same machine.
        f.mix_ratios = {
            mix: [b.rps / n.rps for b, n in zip(by["bridge"], by["naive"], strict=True)]
            for mix, by in runs.items()
        }
        f.not_placed_ratios = [
            p.rps / i.rps
            for p, i in zip(runs[NOT_PLACED]["bridge"], runs["inbound"]["bridge"], strict=True)
        ]
        for mix, ratios in f.mix_ratios.items():
            log(f"{mix}: bridge / naive = {statistics.median(ratios):.2f} (median of pairs)")
        proc, url = servers["bridge"]
        await not_placed_pairs(f, proc, url, kafka_pid)
        f.correlations = await correlations(url)
        rate = 0.5 * f.mixes[NOT_PLACED]["bridge"]["rps"]
        # Inbound at the same rate, alternating with not-placed: what correlation adds to p99.
        half: dict[str, list[WrkResult]] = {NOT_PLACED: [], "inbound": []}
        for rep in range(f.mix_reps):
            for mix, results in half.items():
                results.append(
                    await wrk(f"{mix} bridge half {rep}", url, f.sweep_seconds, proc, kafka_pid,
                              env=mix_env(mix), rate=rate, acks=ACKS)
                )  # fmt: skip
        f.not_placed_half = summarise(half[NOT_PLACED]) | {"offered": rate}
        f.inbound_half = summarise(half["inbound"]) | {"offered": rate}
        log(f"bridge at {rate:.0f} req/s offered: p99 {f.not_placed_half['p99']:.1f} ms "
            f"(outbound not placed), {f.inbound_half['p99']:.1f} ms (inbound)")  # fmt: skip
    finally:
        for proc, _ in servers.values():
            await proc.stop()
