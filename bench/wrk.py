"""Running wrk with ``bench/callbacks.lua`` and turning its summary into numbers.

Every callback measurement goes through ``wrk()``: one place decides how load is generated,
how CPU is attributed to the server, wrk and Kafka, and how repetitions are summarised.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.harness import BENCH, Proc, cpu_seconds, machine_busy, tree

LUA = BENCH / "callbacks.lua"
CONNECTIONS = 50


@dataclass
class WrkResult:
    label: str
    rps: float
    p50: float
    p99: float
    p999: float
    mean: float
    requests: int
    errors: int
    server_cpu: float  # share of one core
    wrk_cpu: float
    kafka_cpu: float
    machine_busy: float  # share of all cores
    rate: float | None = None
    bytes_in: int = 0


async def wrk(
    label: str,
    url: str,
    seconds: float,
    server: Proc,
    kafka_pid: int | None,
    *,
    env: dict[str, str] | None = None,
    rate: float | None = None,
    acks: Path | None = None,
) -> WrkResult:
    out = BENCH / "out" / f"wrk-{uuid.uuid4().hex[:8]}.json"
    wrk_env = {**os.environ, "BENCH_OUT": str(out), "BENCH_RUN": uuid.uuid4().hex[:10]}
    wrk_env |= env or {}
    if rate:
        wrk_env["BENCH_RATE"] = f"{rate:.3f}"
    if acks is not None:
        wrk_env["BENCH_ACKS"] = str(acks)
    server_pids = tree(server.pid)
    kafka_pids = [kafka_pid] if kafka_pid else []
    before = (
        cpu_seconds(server_pids),
        cpu_seconds(kafka_pids),
        resource.getrusage(resource.RUSAGE_CHILDREN),
        machine_busy(),
        time.monotonic(),
    )
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s",
        "-s", str(LUA), url, env=wrk_env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode()[-2000:]}")
    elapsed = time.monotonic() - before[4]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = machine_busy()
    data = json.loads(out.read_text())
    out.unlink()
    duration = data["duration_us"] / 1e6
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return WrkResult(
        label=label,
        rps=data["requests"] / duration,
        p50=data["p50_us"] / 1000,
        p99=data["p99_us"] / 1000,
        p999=data["p999_us"] / 1000,
        mean=data["mean_us"] / 1000,
        requests=data["requests"],
        errors=errors + data["status_errors"],
        server_cpu=(cpu_seconds(server_pids) - before[0]) / elapsed,
        wrk_cpu=(usage.ru_utime + usage.ru_stime - before[2].ru_utime - before[2].ru_stime)
        / elapsed,
        kafka_cpu=(cpu_seconds(kafka_pids) - before[1]) / elapsed,
        machine_busy=(busy[0] - before[3][0]) / max(1, busy[1] - before[3][1]),
        rate=rate,
        bytes_in=data["bytes"],
    )


def median_result(results: list[WrkResult]) -> WrkResult:
    """The repetition with the median throughput (its latencies go with it)."""
    ordered = sorted(results, key=lambda r: r.rps)
    return ordered[len(ordered) // 2]


def summarise(runs: list[WrkResult]) -> dict[str, float]:
    """Per-metric medians over repetitions."""
    keys = [
        "rps",
        "mean",
        "p50",
        "p99",
        "p999",
        "server_cpu",
        "wrk_cpu",
        "kafka_cpu",
        "machine_busy",
    ]
    out = {k: statistics.median(getattr(r, k) for r in runs) for k in keys}
    out["p99_min"] = min(r.p99 for r in runs)
    out["p99_max"] = max(r.p99 for r in runs)
    out["errors"] = sum(r.errors for r in runs)
    out["requests"] = sum(r.requests for r in runs)
    out["reps"] = len(runs)
    return out
