"""The "tracing" phase: the receiver untraced, with 1% of callbacks sampled and with all of
them, side by side in one run.

The three receivers (and an OTLP/HTTP sink that drops what it gets) are started once and run
together, only one loaded at a time; each repetition takes untraced, 1% and 100% in turn,
every other repetition in the reverse order, so a traced run always has an untraced one next to
it in time. A ratio is the median over repetitions of traced / untraced of the same
repetition: the machine's speed drifts by a third over minutes, a neighbour sees the same
machine. Then each at half the untraced maximum, for p99 (information, not a target).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.callbacks_in import ACKS, start_server
from bench.config import TARGET_TRACED_ALL_RATIO, TARGET_TRACED_SAMPLED_RATIO, Findings
from bench.harness import Kafka, Proc, log
from bench.wrk import WrkResult, summarise, wrk

UNTRACED, SAMPLED, ALL = "bridge", "bridge-traced-1%", "bridge-traced"
KINDS = (UNTRACED, SAMPLED, ALL)
#: What each traced receiver adds to the bridge's environment (besides the sink's address).
SAMPLERS = {
    SAMPLED: {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    ALL: {},
}
TARGETS = {SAMPLED: TARGET_TRACED_SAMPLED_RATIO, ALL: TARGET_TRACED_ALL_RATIO}


def run_order(rep: int) -> tuple[str, ...]:
    """Repetition ``rep``'s receivers, every other one backwards (none always goes first)."""
    return KINDS if rep % 2 == 0 else KINDS[::-1]


async def tracing(f: Findings, kafka: Kafka, logs: Path) -> None:
    """Fill ``f.tracing``, ``f.tracing_ratios`` and ``f.tracing_half``."""
    kafka_pid = kafka.pid()
    servers: dict[str, tuple[Proc, str]] = {}
    sink, sink_url = await start_server("otlp-sink", kafka, logs)
    traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink_url, "OTEL_SERVICE_NAME": "bench-bridge"}
    try:
        for kind in KINDS:
            env = traced | SAMPLERS[kind] if kind in SAMPLERS else {}
            servers[kind] = await start_server(kind, kafka, logs, env=env)
        for kind, (proc, url) in servers.items():
            await wrk(f"tracing warm-up {kind}", url, 3, proc, kafka_pid, acks=ACKS)
        runs: dict[str, list[WrkResult]] = {kind: [] for kind in KINDS}
        for rep in range(f.mix_reps):
            for kind in run_order(rep):
                proc, url = servers[kind]
                run = await wrk(f"tracing {kind} {rep}", url, f.mix_seconds, proc, kafka_pid,
                                acks=ACKS)  # fmt: skip
                runs[kind].append(run)
                log(f"tracing: {kind} {run.rps:.0f} req/s, p99 {run.p99:.1f} ms, server CPU "
                    f"{run.server_cpu:.0%}, {run.errors} errors")  # fmt: skip
        f.tracing = {kind: summarise(r) for kind, r in runs.items()}
        f.tracing_ratios = {
            kind: [t.rps / u.rps for t, u in zip(runs[kind], runs[UNTRACED], strict=True)]
            for kind in TARGETS
        }
        for kind, ratios in f.tracing_ratios.items():
            log(f"tracing: {kind} / untraced = {statistics.median(ratios):.2f} (median of pairs)")
        rate = 0.5 * f.tracing[UNTRACED]["rps"]
        half: dict[str, list[WrkResult]] = {kind: [] for kind in KINDS}
        for rep in range(f.reps):
            for kind in run_order(rep):
                proc, url = servers[kind]
                half[kind].append(await wrk(f"tracing {kind} half {rep}", url, f.sweep_seconds,
                                            proc, kafka_pid, rate=rate, acks=ACKS))  # fmt: skip
        f.tracing_half = {kind: summarise(r) | {"offered": rate} for kind, r in half.items()}
    finally:
        for proc, _ in servers.values():
            await proc.stop()
        await sink.stop()


def targets(f: Findings) -> list[str]:
    """The tracing rows of the Targets table."""
    lines = []
    for kind, what in ((SAMPLED, "1% of callbacks sampled"), (ALL, "every callback sampled")):
        ratio = statistics.median(f.tracing_ratios[kind])
        target = TARGETS[kind]
        lines.append(
            f"| tracing on, {what}: ≥ {target:g} x the bridge untraced, same run (*Tracing*) | "
            f"{ratio:.2f} x ({f.tracing[kind]['rps']:,.0f} / {f.tracing[UNTRACED]['rps']:,.0f} "
            f"req/s) | {verdict(ratio >= target)} |"
        )
    return lines


def section(f: Findings) -> list[str]:
    """The section "Tracing": the tracing phase's table."""
    lines = [
        "## Tracing (same run)",
        "",
        "The receiver untraced, with `OTEL_TRACES_SAMPLER=parentbased_traceidratio` and "
        "`OTEL_TRACES_SAMPLER_ARG=0.01` (1%: the callbacks start their own traces, so 1% of "
        "them are sampled), and with every callback sampled; spans exported over OTLP/HTTP to a "
        "local sink that drops them (`bench/servers.py otlp-sink`, on the same two cores). "
        f"The three ran side by side ({f.mix_reps} x {f.mix_seconds:g} s each at full speed, "
        "every other repetition in the reverse order); *x untraced* is the median of each "
        "repetition's traced / untraced, with its range. p99 at half rate: "
        f"{f.tracing_half[UNTRACED]['offered']:,.0f} req/s offered to each, median of "
        f"{f.reps} x {f.sweep_seconds:g} s.",
        "",
        "| Receiver | req/s | x untraced | target | result | p99 ms | CPU per callback | "
        "p99 ms at half rate |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for kind in KINDS:
        r, h = f.tracing[kind], f.tracing_half[kind]
        cpu = 1e6 * r["server_cpu"] / r["rps"]
        if kind in TARGETS:
            ratios = f.tracing_ratios[kind]
            ratio = statistics.median(ratios)
            cells = (
                f"**{ratio:.2f}** ({min(ratios):.2f} - {max(ratios):.2f}) | "
                f"≥ {TARGETS[kind]:g} | {verdict(ratio >= TARGETS[kind])}"
            )
        else:
            cells = "1 | | "
        lines.append(
            f"| {kind} | {r['rps']:,.0f} | {cells} | {r['p99']:.1f} | {cpu:.0f} us | "
            f"{h['p99']:.1f} |"
        )
    errors = sum(r["errors"] for r in [*f.tracing.values(), *f.tracing_half.values()])
    lines += ["", f"Non-2xx answers and socket errors over these runs: {errors:.0f}", ""]
    return lines


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"
