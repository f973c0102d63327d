"""Phases 1-3: callbacks in. The bridge receiver against ``bare`` and ``naive``, at full speed
and at fixed rates, with 2 processes, against body size, under py-spy; then the check that
Kafka holds every callback the bridge acknowledged.

These phases share the servers under test, the seeded ledger and results topics and the acks
file, so they live together, apart from the worker's phases (the "mixes" phase, in ``mixes``,
uses them too).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench.config import POOL, RATE_FRACTIONS, SIZES, Findings
from bench.harness import (
    BENCH,
    PY,
    PY_SPY,
    Kafka,
    Proc,
    log,
    producer,
    read_topic,
    spawn,
    wait_http,
)
from bench.wrk import summarise, wrk
from tests.support.ports import free_port

EVENTS, DLQ, NAIVE, RESULTS_TOPIC = "bench.events", "bench.dlq", "bench.naive", "bench.results"
LEDGER_TOPIC = "bench.ledger"
ACKS = BENCH / "out" / "acks.txt"  # every 200 the bridge answered, for verify()
DEBUG_LOGS = {"BRIDGE_LOG__LEVEL": "DEBUG"}


def bridge_env(kafka: Kafka, port: int) -> dict[str, str]:
    """The receiver's settings: defaults, plus where Kafka, the topics and the port are."""
    return {
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
        "BRIDGE_TOPICS__CALL_EVENTS": EVENTS,
        "BRIDGE_TOPICS__DEAD_LETTERS": DLQ,
        "BRIDGE_TOPICS__PLACE_CALL_RESULTS": RESULTS_TOPIC,
        "BRIDGE_TOPICS__COMMAND_LEDGER": LEDGER_TOPIC,
        "BRIDGE_HTTP__HOST": "127.0.0.1",
        "BRIDGE_HTTP__PORT": str(port),
        # Like the naive and bare servers it is compared with: no basic auth.
        "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED": "true",
    }


async def start_server(
    kind: str, kafka: Kafka, logs: Path, workers: int = 1, env: dict[str, str] | None = None
) -> tuple[Proc, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if kind.startswith("bridge"):
        args = [PY, "-m", "bridge.cli", "receiver", "--workers", str(workers)]
        env = bridge_env(kafka, port) | (env or {})
        proc = await spawn(f"{kind}-{workers}", args, env, logs)
        await wait_http(f"{url}/readyz", proc)
    else:
        args = [PY, str(BENCH / "servers.py"), kind, "--port", str(port),
                "--bootstrap", kafka.bootstrap, "--topic", NAIVE]  # fmt: skip
        proc = await spawn(kind, args, {}, logs)
        await wait_http(f"{url}/healthz", proc)
    return proc, url


async def seed_placed(kafka: Kafka) -> None:
    """The outbound calls of the load as if the bridge had placed them: for each, the ledger's
    ``placing`` then ``done`` (with the result), and the ``placed`` result on the results topic.

    The outbound callbacks of ``callbacks.lua`` are from 3215551081 to 3215551801 (region US).
    """
    async with producer(kafka.bootstrap) as p:
        now = datetime.now(UTC).isoformat()
        for n in range(POOL):
            key = f"cmd-{n}".encode()
            result = {"command_id": f"cmd-{n}", "status": "placed", "call_id": f"bench-out-{n:06d}",
                      "correlation_id": f"corr-{n}", "attempts": 1, "received_at": now,
                      "finished_at": now, "metadata": {}}  # fmt: skip
            entry = {"command_id": f"cmd-{n}", "state": "placing", "source": f"bench/0/{n}",
                     "updated_at": now, "fonenumber": "+13215551081",
                     "to": "+13215551801"}  # fmt: skip
            await p.send(LEDGER_TOPIC, json.dumps(entry).encode(), key=key)
            done = entry | {"state": "done", "result": result}
            await p.send(LEDGER_TOPIC, json.dumps(done).encode(), key=key)
            await p.send(RESULTS_TOPIC, json.dumps(result).encode(), key=key)
        await p.flush()


async def warm_broker(kafka: Kafka, logs: Path) -> None:
    """Load a fresh broker for 10 s through naive, then 10 s through the bridge, not measured.

    A fresh JVM spends its first seconds of load compiling: Kafka took a third of a core more
    from whichever server ran first (the bridge) than from the same server later on. The
    bridge's records carry CloudEvents headers, which naive's do not: warmed through naive
    only, the broker still compiled those paths during the bridge's first row (Kafka CPU 33%
    there against 8% for the same records later).
    """
    for kind in ("naive", "bridge"):
        proc, url = await start_server(kind, kafka, logs)
        try:
            log(f"broker warm-up ({kind}, 10 s, not measured)")
            await wrk("broker warm-up", url, 10, proc, kafka.pid())
        finally:
            await proc.stop()


async def callbacks_in(f: Findings, kafka: Kafka, logs: Path, profile: bool) -> None:
    acks = ACKS
    kafka_pid = kafka.pid()
    bridge_max = 0.0
    await warm_broker(kafka, logs)
    for kind in ("bridge", "naive", "bare"):
        proc, url = await start_server(kind, kafka, logs)
        try:
            collect = acks if kind == "bridge" else None
            log(f"{kind}: warm-up")
            await wrk("warm-up", url, 3, proc, kafka_pid, acks=collect)
            runs = []
            for rep in range(f.reps):
                runs.append(await wrk(f"{kind} max {rep}", url, f.seconds, proc, kafka_pid,
                                      acks=collect))  # fmt: skip
                log(f"{kind}: {runs[-1].rps:.0f} req/s, p99 {runs[-1].p99:.1f} ms, server CPU "
                    f"{runs[-1].server_cpu:.0%}, wrk CPU {runs[-1].wrk_cpu:.0%}")  # fmt: skip
            f.max[kind] = summarise(runs)
            if kind == "bridge":
                bridge_max = f.max["bridge"]["rps"]
                f.scaling[1] = f.max["bridge"]
                if profile:
                    f.profile = await profile_receiver(proc, url, kafka_pid, collect)
            f.sweep[kind] = []
            for fraction in RATE_FRACTIONS:
                rate = fraction * bridge_max
                f.sweep[kind].append(
                    await wrk(
                        f"{kind} {fraction:g}x",
                        url,
                        f.sweep_seconds,
                        proc,
                        kafka_pid,
                        rate=rate,
                        acks=collect,
                    )
                )
            half = [r for r in f.sweep[kind] if r.rate == 0.5 * bridge_max]
            for _ in range(f.reps - 1):
                half.append(await wrk(f"{kind} half", url, f.sweep_seconds, proc, kafka_pid,
                                      rate=0.5 * bridge_max, acks=collect))  # fmt: skip
            f.half[kind] = summarise(half)
            f.half[kind]["offered"] = 0.5 * bridge_max
            log(
                f"{kind}: at {0.5 * bridge_max:.0f} req/s offered: p99 {f.half[kind]['p99']:.1f} ms"
            )
            if kind == "bridge":
                await sizes(f, proc, url, kafka_pid, collect)
        finally:
            await proc.stop()
    # The same receiver with a log line per callback (DEBUG); tracing has a phase of its own.
    await variant(f, "bridge-debug", DEBUG_LOGS, kafka, logs, bridge_max)
    proc, url = await start_server("bridge", kafka, logs, workers=2)
    try:
        await wrk("warm-up", url, 3, proc, kafka_pid, acks=acks)
        runs = [await wrk(f"bridge x2 {rep}", url, f.seconds, proc, kafka_pid, acks=acks)
                for rep in range(f.reps)]  # fmt: skip
        f.scaling[2] = summarise(runs)
        log(f"bridge --workers 2: {f.scaling[2]['rps']:.0f} req/s")
    finally:
        await proc.stop()


async def variant(
    f: Findings, kind: str, env: dict[str, str], kafka: Kafka, logs: Path, bridge_max: float
) -> None:
    """The bridge receiver with ``env`` added: full speed and half the plain bridge's rate."""
    proc, url = await start_server(kind, kafka, logs, env=env)
    try:
        await wrk("warm-up", url, 3, proc, kafka.pid(), acks=ACKS)
        runs = [await wrk(f"{kind} {rep}", url, f.seconds, proc, kafka.pid(), acks=ACKS)
                for rep in range(f.reps)]  # fmt: skip
        f.max[kind] = summarise(runs)
        half = [
            await wrk(f"{kind} half", url, f.sweep_seconds, proc, kafka.pid(),
                      rate=0.5 * bridge_max, acks=ACKS)
            for _ in range(f.reps)
        ]  # fmt: skip
        f.half[kind] = summarise(half) | {"offered": 0.5 * bridge_max}
        log(f"{kind}: {f.max[kind]['rps']:.0f} req/s, at half rate p99 "
            f"{f.half[kind]['p99']:.1f} ms")  # fmt: skip
    finally:
        await proc.stop()


async def sizes(
    f: Findings, proc: Proc, url: str, kafka_pid: int | None, acks: Path | None
) -> None:
    for pad in SIZES:
        env = {"BENCH_MIX": "json", "BENCH_PAD": str(pad)}
        seconds = 2 if f.quick else 3
        runs = [await wrk(f"size {pad}", url, seconds, proc, kafka_pid, env=env, acks=acks)
                for _ in range(f.reps)]  # fmt: skip
        result = summarise(runs)
        result["body_bytes"] = pad + 250
        f.sizes.append((pad, result))
        log(f"bridge JSON body ~{pad + 250} B: {result['rps']:.0f} req/s")


async def profile_receiver(
    proc: Proc, url: str, kafka_pid: int | None, acks: Path | None
) -> list[str]:
    """py-spy the receiver during a full-speed run: CPU per request by package and function."""
    py_spy = shutil.which("py-spy") or str(PY_SPY)
    raw = BENCH / "out" / "profile.txt"
    rate, seconds = 1000, 6
    spy = await asyncio.create_subprocess_exec(
        py_spy, "record", "--pid", str(proc.pid), "--duration", str(seconds), "--rate", str(rate),
        "--format", "raw", "--output", str(raw), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    run = await wrk("profiled", url, seconds + 1, proc, kafka_pid, acks=acks)
    await spy.wait()
    if not raw.exists():
        return ["(py-spy could not attach)"]
    by_package: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        leaf = frames[-1]
        path = leaf.rpartition("(")[2].split(":")[0]
        by_package[path.split("/")[0] if "/" in path else path] += n
        for frame in {f for f in frames if "bridge/" in f and "cli.py" not in f}:
            by_function[frame.split(" (")[0]] += n
    # One sample = 1/rate s of CPU; per request = samples / rate / (requests per second * s).
    per_request = 1e6 / rate / (run.rps * seconds)
    return [
        f"{total} samples at {rate} Hz over {seconds} s at {run.rps:,.0f} req/s = "
        f"{total * per_request:.0f} us of CPU per request. By package (own time):",
        *(f"  {n * per_request:6.1f} us  {name}" for name, n in by_package.most_common(12)),
        "Bridge functions (inclusive time; coroutine stacks are partly cut by py-spy):",
        *(f"  {n * per_request:6.1f} us  {name}" for name, n in by_function.most_common(14)),
    ]


async def verify(f: Findings, kafka: Kafka) -> None:
    acks = ACKS
    acked: Counter[str] = Counter()
    for line in acks.read_text().splitlines():
        if line.strip():
            acked[json.loads(line)["event_id"]] += 1
    records = await read_topic(kafka.bootstrap, EVENTS)
    stored = Counter(json.loads(r.value)["event_id"] for r in records)
    missing = sum(max(0, n - stored[event_id]) for event_id, n in acked.items())
    f.verification = {
        "acknowledged": sum(acked.values()),
        "distinct_acknowledged": len(acked),
        "records": len(records),
        "missing": missing,
    }
    log(f"verification: {f.verification}")
