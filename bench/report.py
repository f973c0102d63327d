"""``bench/RESULTS.md`` and ``bench/latency.png`` from the ``Findings`` of a run.

Tables and verdicts are computed here; the analysis written by people (what the profiles
showed, what was changed, what remains) is ``bench/NOTES.md``, appended as it is, so it can be
edited as Markdown and reviewed apart from the code.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.config import (
    LOW_IN_FLIGHT,
    MAX_IN_FLIGHT,
    POOL,
    RATE_FRACTIONS,
    RATE_LIMIT,
    SANDBOX_LATENCY,
    TARGET_COMMANDS_RATIO,
    TARGET_LEDGER_BYTES_PER_ID,
    TARGET_MIX_NAIVE_RATIO,
    TARGET_NAIVE_RATIO,
    TARGET_NOT_PLACED_VS_INBOUND,
    TARGET_P99_MS,
    TARGET_RSS_MB,
    Findings,
)
from bench.harness import BENCH
from bench.mixes import MIXES, NOT_LOOKUPS, NOT_PLACED
from bench.tracing import section as tracing_section
from bench.tracing import targets as tracing_targets
from bench.wrk import CONNECTIONS

NOTES = BENCH / "NOTES.md"  # the hand-written analysis, appended to RESULTS.md as it is


def chart(f: Findings, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only needed for the chart

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    colors = {"bare": "tab:green", "naive": "tab:orange", "bridge": "tab:blue"}
    for kind, runs in f.sweep.items():
        xs = [r.rps for r in runs]
        ax.plot(xs, [r.p50 for r in runs], "o-", color=colors[kind], label=f"{kind} p50")
        ax.plot(xs, [r.p99 for r in runs], "s--", color=colors[kind], label=f"{kind} p99")
    ax.axhline(TARGET_P99_MS, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("achieved rate (requests/s; offered = fractions of the bridge's maximum)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_yscale("log")
    ax.set_title("Callback latency against rate (wrk, 50 connections, fixed-rate schedule)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


def versions() -> str:
    def v(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    wrk_version = subprocess.run(  # noqa: S603
        [shutil.which("wrk") or "wrk", "--version"], capture_output=True, text=True, check=False
    )
    caches = sorted((Path.home() / ".cache" / "fonestorm-bridge").glob("kafka-*"))
    kafka_version = caches[-1].name.removeprefix("kafka-") if caches else "?"
    return (
        f"Python {platform.python_version()}, aiohttp {v('aiohttp')}, aiokafka {v('aiokafka')}, "
        f"pydantic {v('pydantic')}, Apache Kafka {kafka_version} (scripts/local-kafka, KRaft, "
        f"one node), {(wrk_version.stdout or wrk_version.stderr).split(' [')[0].strip()}"
    )


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    mem = status_like("/proc/meminfo", "MemTotal") / 1024 / 1024
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Linux {platform.release()}"


def status_like(path: str, name: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def others_running() -> list[str]:
    """Other Kafka brokers on this machine (they share the two cores with the benchmark)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            parts = cmdline.read_bytes().split(b"\0")
            if b"kafka.Kafka" in parts and not any(b"/bench-" in p for p in parts):
                found.append(next((p.decode() for p in parts if p.endswith(b".properties")), "?"))
    return found


def mix_checks(f: Findings) -> tuple[list[str], float, bool, bool]:
    """Mixes below the naive-ratio target; not-placed / inbound; its verdict; p99's verdict."""
    below = [
        mix
        for mix, ratios in f.mix_ratios.items()
        if statistics.median(ratios) < TARGET_MIX_NAIVE_RATIO
    ]
    vs_inbound = statistics.median(f.not_placed_ratios)
    p99_ok = f.not_placed_half["p99"] <= TARGET_P99_MS
    return below, vs_inbound, vs_inbound >= TARGET_NOT_PLACED_VS_INBOUND, p99_ok


def lookups(f: Findings) -> str:
    """``at_once 9,990 (99.9%), round_trip 10 (0.1%); tags missed 0; ledger rounds ...``."""
    found = f.correlations
    counts = {how: n for how, n in found.items() if how not in NOT_LOOKUPS}
    total = sum(counts.values()) or 1.0
    parts = [f"{how} {n:,.0f} ({100 * n / total:.1f}%)" for how, n in sorted(counts.items())]
    rounds = found.get("count", 0.0)
    mean_ms = 1000 * found.get("sum", 0.0) / (rounds or 1.0)
    return (
        f"{', '.join(parts) or 'none'}; tags missed {found.get('tags missed', 0):.0f}; "
        f"ledger rounds {rounds:,.0f} ({1000 * rounds / total:.1f} per 1,000 such callbacks, "
        f"{mean_ms:.1f} ms on average from request to ledger read)"
    )


def mixes_section(f: Findings) -> list[str]:
    """The section "Every mix": the mixes phase's table and its two not-placed targets."""
    _, vs_inbound, vs_ok, p99_ok = mix_checks(f)
    half = f.not_placed_half
    np_cost, in_cost = f.not_placed_costs[NOT_PLACED], f.not_placed_costs["inbound"]
    lines = [
        f"## Every mix ({CONNECTIONS} connections, same run)",
        "",
        "Bridge, naive and bare ran side by side, each repetition taking every mix on every "
        "server in turn (the bridge's inbound and not-placed runs next to each other), every "
        f"other repetition in the reverse order ({f.mix_reps} x "
        f"{f.mix_seconds:g} s at full speed). req/s are medians over repetitions; *bridge / "
        "naive* is the median of each repetition's ratio of two runs next to each other in "
        "time (the machine's speed drifts by a third over minutes; the target uses it), with "
        "its range and, in brackets, the ratio of the medians. Every mix "
        "cycles GET / form POST / JSON POST and BEGIN / END: `inbound` a new call id per "
        "request; `outbound-placed` calls whose ledger entries were seeded (placed by the "
        "bridge); `outbound-not-placed` call ids the ledger never saw (a fresh prefix per run); "
        "`mixed` inbound and outbound-placed alternating (the load of the other sections).",
        "",
        f"| Mix | bridge req/s | naive req/s | bare req/s | bridge / naive | p99 bridge ms | "
        f"≥ {TARGET_MIX_NAIVE_RATIO} x naive |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for mix in MIXES:
        by, ratios = f.mixes[mix], f.mix_ratios[mix]
        ratio = statistics.median(ratios)
        of_medians = by["bridge"]["rps"] / by["naive"]["rps"]
        lines.append(
            f"| {mix} | {by['bridge']['rps']:,.0f} | {by['naive']['rps']:,.0f} | "
            f"{by['bare']['rps']:,.0f} | **{ratio:.2f}** ({min(ratios):.2f} - "
            f"{max(ratios):.2f}) [{of_medians:.2f}] | {by['bridge']['p99']:.1f} | "
            f"{verdict(ratio >= TARGET_MIX_NAIVE_RATIO)} |"
        )
    errors = sum(r["errors"] for by in f.mixes.values() for r in by.values())
    lines += [
        "",
        f"- Outbound not placed by the bridge against inbound (bridge): **{vs_inbound:.2f} x** "
        f"(median of the ratios of {len(f.not_placed_ratios)} pairs of runs next to each other: "
        f"the {f.mix_reps} repetitions' and {f.not_placed_pairs} more of the bridge alone, "
        f"alternating which went first; range {min(f.not_placed_ratios):.2f} - "
        f"{max(f.not_placed_ratios):.2f}; medians {f.mixes[NOT_PLACED]['bridge']['rps']:,.0f} / "
        f"{f.mixes['inbound']['bridge']['rps']:,.0f} req/s); target ≥ "
        f"{TARGET_NOT_PLACED_VS_INBOUND} x: {verdict(vs_ok)}",
        f"- CPU per callback in the {f.not_placed_pairs} extra pairs (median), not placed "
        f"against inbound: receiver {np_cost['receiver']:.0f} / {in_cost['receiver']:.0f} us, "
        f"Kafka {np_cost['kafka']:.0f} / {in_cost['kafka']:.0f} us",
        f"- Outbound not placed, bridge at half its maximum of that mix "
        f"({half['offered']:,.0f} req/s offered, {half['rps']:,.0f} achieved, median of "
        f"{half['reps']:.0f} x {f.sweep_seconds:g} s): p99 **{half['p99']:.1f} ms** (range "
        f"{half['p99_min']:.1f} - {half['p99_max']:.1f}); target ≤ {TARGET_P99_MS:g} ms: "
        f"{verdict(p99_ok)}; inbound at the same rate, alternating with it: p99 "
        f"{f.inbound_half['p99']:.1f} ms (range {f.inbound_half['p99_min']:.1f} - "
        f"{f.inbound_half['p99_max']:.1f})",
        f"- How the bridge looked up the outbound callbacks of calls it did not know "
        f"(`bridge_callback_correlations_total`, `bridge_ledger_round_seconds`, after the "
        f"full-speed runs): {lookups(f)}",
        f"- Non-2xx answers and socket errors over all these runs: {errors:.0f}",
        "",
    ]
    return lines


def ledger_memory_row(f: Findings) -> str:
    """The Targets row of the worker's memory per remembered command id."""
    lm = f.ledger_memory
    return (
        f"| worker memory ≤ {TARGET_LEDGER_BYTES_PER_ID:g} bytes per remembered command id "
        f"({lm['ids']:,.0f} ids through the ledger in-process: `python -m bench.ledger_memory`) "
        f"| {lm['rss_bytes_per_id']:.0f} bytes of RSS per id | "
        f"{verdict(lm['rss_bytes_per_id'] <= TARGET_LEDGER_BYTES_PER_ID)} |"
    )


def report(f: Findings, path: Path, command: str) -> None:
    m, h = f.max, f.half
    bridge, naive, bare = m["bridge"], m["naive"], m["bare"]
    naive_ratio = bridge["rps"] / naive["rps"]
    bare_ratio = bridge["rps"] / bare["rps"]
    half_p99 = h["bridge"]["p99"]
    cmd, backlog = f.commands, f.backlog
    below, vs_inbound, vs_ok, p99_ok = mix_checks(f)
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in "
        f"{(time.monotonic() - f.started) / 60:.1f} minutes"
        + (" (**--quick**: one short repetition each; not for comparison)" if f.quick else "")
        + ". Everything ran on this one machine, over 127.0.0.1.",
        "",
        "| | |",
        "| --- | --- |",
        f"| Machine | {machine()} |",
        f"| Versions | {versions()} |",
        f"| Load generator | wrk, 1 thread, {CONNECTIONS} connections, `bench/callbacks.lua` |",
        "| Callback mix | GET (query, unfilled `{{tokens}}` on BEGIN) / form POST / JSON POST in "
        "equal parts x INBOUND / OUTBOUND x BEGIN / END (END with disposition and billable "
        "seconds), ~250-byte bodies, a new call id per inbound request; outbound call ids cycle "
        f"through {POOL:,} calls whose `placing` and `done` entries are on the command ledger "
        "(and their `placed` results on the results topic: calls the bridge placed, as in "
        "production); the *Every mix* section splits this load by direction |",
        "| Bridge receiver | `python -m bridge.cli receiver`, default settings (acks=all, "
        "idempotent producer, linger 0, JSON logs at INFO to a file, correlation on) |",
        "| Naive | `bench/servers.py naive`: decode, `json.dumps`, `send_and_wait` with acks=all |",
        "| Bare | `bench/servers.py bare`: read the body, answer 204 |",
        f"| Worker | `python -m bridge.cli worker`, `BRIDGE_WORKER__MAX_IN_FLIGHT={MAX_IN_FLIGHT}` "
        f"(and {LOW_IN_FLIGHT} in one extra run), "
        f"`BRIDGE_WORKER__RATE_LIMIT={RATE_LIMIT:g}` (raised from 20 so the API is the limit), "
        f"other settings default; sandbox `BRIDGE_SANDBOX__LATENCY={SANDBOX_LATENCY}` |",
        f"| Repetitions | median of {f.reps} ({f.seconds:g} s each at full speed, "
        f"{f.sweep_seconds:g} s per fixed-rate point), after a 3 s warm-up |",
        "",
    ]
    others = others_running()
    if others:
        lines += [
            f"Other processes shared the two cores: {len(others)} other Kafka broker(s) "
            f"({', '.join(Path(o).parent.name for o in others)}) were running; the `machine busy` "
            "column shows how loaded the machine was.",
            "",
        ]
    lines += [
        "## Targets",
        "",
        "| Target | Measured | Result |",
        "| --- | --- | --- |",
        f"| bridge ≥ {TARGET_NAIVE_RATIO} x naive throughput | {naive_ratio:.2f} x "
        f"({bridge['rps']:,.0f} / {naive['rps']:,.0f} req/s) | "
        f"{verdict(naive_ratio >= TARGET_NAIVE_RATIO)} |",
        f"| p99 ≤ {TARGET_P99_MS:g} ms at half the bridge's maximum rate | {half_p99:.1f} ms at "
        f"{h['bridge']['offered']:,.0f} req/s offered ({h['bridge']['rps']:,.0f} achieved) | "
        f"{verdict(half_p99 <= TARGET_P99_MS)} |",
        "| (the same, receiver with `BRIDGE_LOG__LEVEL=DEBUG`: a log line per callback) | "
        f"{h['bridge-debug']['p99']:.1f} ms | "
        f"{verdict(h['bridge-debug']['p99'] <= TARGET_P99_MS)} |",
        f"| (bridge ≥ {TARGET_NAIVE_RATIO} x naive, receiver with `BRIDGE_LOG__LEVEL=DEBUG`) | "
        f"{m['bridge-debug']['rps'] / naive['rps']:.2f} x | "
        f"{verdict(m['bridge-debug']['rps'] / naive['rps'] >= TARGET_NAIVE_RATIO)} |",
        *tracing_targets(f),
        *(
            f"| commands ≥ {TARGET_COMMANDS_RATIO} x in-flight limit ({r['in_flight']} / "
            f"{SANDBOX_LATENCY * 1000:g} ms = {r['limit']:,.0f}/s){note} | {r['rate']:,.0f}/s = "
            f"{r['ratio']:.2f} x | {verdict(r['ratio'] >= TARGET_COMMANDS_RATIO)} |"
            for r, note in (
                (cmd, ", default in-flight"),
                (f.commands_low, ", in-flight lowered"),
            )
        ),
        f"| worker peak RSS ≤ {TARGET_RSS_MB:g} MB with a {backlog['count']:,}-command backlog | "
        f"{backlog['peak_rss_mb']:.0f} MB ({backlog['done']:,} done) | "
        f"{verdict(backlog['peak_rss_mb'] <= TARGET_RSS_MB)} |",
        ledger_memory_row(f),
        f"| Kafka holds every acknowledged callback | {f.verification['missing']} missing of "
        f"{f.verification['acknowledged']:,} | {verdict(f.verification['missing'] == 0)} |",
        f"| every mix: bridge ≥ {TARGET_MIX_NAIVE_RATIO} x naive, same run (*Every mix*) | "
        f"{len(f.mixes) - len(below)} of {len(f.mixes)} mixes"
        + (f" (below: {', '.join(below)})" if below else "")
        + f" | {verdict(not below)} |",
        f"| outbound not placed by the bridge ≥ {TARGET_NOT_PLACED_VS_INBOUND} x inbound | "
        f"{vs_inbound:.2f} x | {verdict(vs_ok)} |",
        f"| outbound not placed: p99 ≤ {TARGET_P99_MS:g} ms at half the bridge's maximum of "
        f"that mix | {f.not_placed_half['p99']:.1f} ms | {verdict(p99_ok)} |",
        "",
        *mixes_section(f),
        *tracing_section(f),
        "## Callbacks in: full speed at 50 connections",
        "",
        "| Server | req/s | p50 ms | p99 ms | p99.9 ms | server CPU | wrk CPU | Kafka CPU | "
        "machine busy | non-2xx / errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind in ("bare", "naive", "bridge", "bridge-debug"):
        r = m[kind]
        lines.append(
            f"| {kind} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['p999']:.2f} | "
            f"{r['server_cpu']:.0%} | {r['wrk_cpu']:.0%} | {r['kafka_cpu']:.0%} | "
            f"{r['machine_busy']:.0%} | {r['errors']:.0f} |"
        )
    lines += [
        "",
        f"Ratios: bridge / naive = **{naive_ratio:.2f}**, bridge / bare = **{bare_ratio:.2f}**. "
        "CPU columns are shares of one core (the receiver is one process, so 100% is its limit); "
        "wrk used far less than the servers, so the load generator is not the bottleneck.",
        "",
        f"## Callbacks in: fixed rate, half the bridge's maximum ({h['bridge']['offered']:,.0f} "
        "req/s)",
        "",
        "| Server | achieved req/s | p50 ms | p99 ms | p99 range over repetitions | p99.9 ms | "
        "server CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind in ("bare", "naive", "bridge", "bridge-debug"):
        r = h[kind]
        lines.append(
            f"| {kind} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
            f"{r['p99_min']:.1f} - {r['p99_max']:.1f} | {r['p999']:.2f} | {r['server_cpu']:.0%} |"
        )
    lines += [
        "",
        "wrk has no constant-rate mode (wrk2 is not packaged by Debian): `callbacks.lua` gives "
        "every request the next slot of a fixed schedule and the connection waits for it; "
        "latency is measured from the actual send.",
        "",
        "### Latency against rate ([chart](latency.png))",
        "",
        "| Offered (x bridge max) | "
        + " | ".join(f"{k} req/s, p50 / p99 ms" for k in f.sweep)
        + " |",
        "| --- | " + " | ".join("---:" for _ in f.sweep) + " |",
    ]
    for i, fraction in enumerate(RATE_FRACTIONS):
        cells = [
            f"{runs[i].rps:,.0f}, {runs[i].p50:.1f} / {runs[i].p99:.1f}"
            for runs in f.sweep.values()
        ]
        lines.append(f"| {fraction:g} | " + " | ".join(cells) + " |")
    v = f.verification
    s1, s2 = f.scaling[1], f.scaling[2]
    lines += [
        "",
        "![latency against rate](latency.png)",
        "",
        "## Nothing lost",
        "",
        f"Every 200 the bridge answered in this run (all its repetitions, sizes, mixes and the "
        f"2-process runs) was recorded by wrk: {v['acknowledged']:,} acknowledgements of "
        f"{v['distinct_acknowledged']:,} distinct event ids. The events topic holds "
        f"{v['records']:,} records; counted by event id, **{v['missing']} acknowledged callbacks "
        "are missing**. (Outbound call ids repeat by design, so the check is per event id with "
        "multiplicity: an id acknowledged n times must be in Kafka at least n times.)",
        "",
        "## Scaling: processes sharing the port (`receiver --workers N`, SO_REUSEPORT)",
        "",
        "| Processes | req/s | p50 ms | p99 ms | server CPU (all processes) | wrk CPU | Kafka CPU "
        "| machine busy |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| 1 | {s1['rps']:,.0f} | {s1['p50']:.2f} | {s1['p99']:.2f} | {s1['server_cpu']:.0%} | "
        f"{s1['wrk_cpu']:.0%} | {s1['kafka_cpu']:.0%} | {s1['machine_busy']:.0%} |",
        f"| 2 | {s2['rps']:,.0f} | {s2['p50']:.2f} | {s2['p99']:.2f} | {s2['server_cpu']:.0%} | "
        f"{s2['wrk_cpu']:.0%} | {s2['kafka_cpu']:.0%} | {s2['machine_busy']:.0%} |",
        "",
        f"2 processes / 1 process = **{s2['rps'] / s1['rps']:.2f}**. With 2 cores shared by "
        "the receiver, the broker and wrk, a second process can only take what the others leave.",
        "",
        "## Throughput against body size (JSON POST, bridge, 1 process)",
        "",
        "| Body bytes | req/s | MB/s in | p50 ms | p99 ms | server CPU |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for _pad, r in f.sizes:
        lines.append(
            f"| {r['body_bytes']:,.0f} | {r['rps']:,.0f} | "
            f"{r['rps'] * r['body_bytes'] / 1e6:.1f} | {r['p50']:.2f} | {r['p99']:.2f} | "
            f"{r['server_cpu']:.0%} |"
        )
    lines += [
        "",
        "The padding is an unknown field: it is read, parsed and dropped, so the Kafka record "
        "stays the size of a CallEvent (~0.7 KB); this measures the HTTP and JSON side.",
        "",
        "## Commands out",
        "",
        "| Backlog | processes | in-flight each | done | statuses | commands/s | limit "
        "(in-flight / latency) | ratio | p50 ms | p99 ms | worker CPU | sandbox CPU | Kafka CPU "
        "| worker peak RSS |",
        "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for r in (cmd, f.commands_low, f.commands_2p, backlog):
        if not r:
            continue
        lines.append(
            f"| {r['count']:,} | {r['processes']} | {r['in_flight']} | {r['done']:,} | "
            f"{r['statuses']} | "
            f"{r['rate']:,.0f} | "
            f"{r['limit']:,.0f} | {r['ratio']:.2f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
            f"{r['worker_cpu']:.0%} | {r['sandbox_cpu']:.0%} | {r['kafka_cpu']:.0%} | "
            f"{r['peak_rss_mb']:.0f} MB |"
        )
    lines += [
        "",
        "Latency is command-to-`placed` inside the worker: from reading the command (the "
        "result's `received_at`) to the outcome (`finished_at`): ledger `placing` (acks=all), "
        "the create-call request (20 ms in the sandbox); the ledger `done` and the result's own "
        "produce follow `finished_at`, and the backlog's queueing time is not in it. The rate "
        "is results over the time from the first command read to the last outcome. Peak RSS is "
        "the kernel's high-water mark (`VmHWM`) of the worker (the largest process with 2).",
        "",
    ]
    if f.profile:
        lines += ["## Profile of the receiver at full speed (py-spy)", "", "```", *f.profile,
                  "```", ""]  # fmt: skip
    path.write_text("\n".join(lines) + "\n" + NOTES.read_text())
