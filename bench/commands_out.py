"""Phase 4: commands out. The worker against the sandbox at a fixed API latency: throughput
and latency for a backlog of commands, and its peak RSS (the 100,000-command backlog).

One function serves every worker run (in-flight bound, processes, backlog size), so the runs
differ only in their arguments.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.config import MAX_IN_FLIGHT, RATE_LIMIT, SANDBOX_LATENCY, WORKER_EXTRA, Findings
from bench.harness import (
    PY,
    Kafka,
    cpu_seconds,
    create_topics,
    log,
    producer,
    spawn,
    status_kb,
    tree,
    wait_http,
)
from tests.support.ports import free_port
from tests.support.processes import worker_env


async def commands_out(
    f: Findings,
    kafka: Kafka,
    logs: Path,
    count: int,
    tag: str,
    in_flight: int = MAX_IN_FLIGHT,
    processes: int = 1,
) -> dict[str, Any]:
    topics = {
        "PLACE_CALL": f"bench.{tag}.commands",
        "PLACE_CALL_RESULTS": f"bench.{tag}.results",
        "COMMAND_LEDGER": f"bench.{tag}.ledger",
        "CALL_EVENTS": f"bench.{tag}.events",
        "DEAD_LETTERS": f"bench.{tag}.dlq",
    }
    await create_topics(
        kafka.bootstrap, list(topics.values()), compacted=[topics["COMMAND_LEDGER"]]
    )
    sandbox_port = free_port()
    sandbox = await spawn(
        f"sandbox-{tag}", [PY, "-m", "bridge.cli", "sandbox"],
        {"BRIDGE_SANDBOX__PORT": str(sandbox_port), "BRIDGE_SANDBOX__LATENCY": str(SANDBOX_LATENCY),
         "BRIDGE_LOG__LEVEL": "WARNING"}, logs,
    )  # fmt: skip
    await wait_http(f"http://127.0.0.1:{sandbox_port}/healthz", sandbox)
    log(f"commands {tag}: producing {count} commands")
    async with producer(kafka.bootstrap) as p:
        for n in range(count):
            command_id = f"{tag}-{n:06d}"
            body = {"command_id": command_id, "fonenumber": "3215551081", "to": "3215551801",
                    "tts": "Your appointment is tomorrow at 10."}  # fmt: skip
            await p.send(topics["PLACE_CALL"], json.dumps(body).encode(), key=command_id.encode())
        await p.flush()
    env = worker_env(
        kafka.bootstrap, topics, f"http://127.0.0.1:{sandbox_port}",
        token="sandbox-token",  # noqa: S106 - the loopback sandbox's default token
        group=f"bench-{tag}-{uuid.uuid4().hex[:6]}",
        BRIDGE_WORKER__MAX_IN_FLIGHT=str(in_flight),
        BRIDGE_WORKER__RATE_LIMIT=f"{RATE_LIMIT:g}",
        BRIDGE_HTTP__PORT=str(free_port()),
    ) | WORKER_EXTRA  # fmt: skip
    consumer = AIOKafkaConsumer(
        topics["PLACE_CALL_RESULTS"], bootstrap_servers=kafka.bootstrap, group_id=None,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    worker = await spawn(
        f"worker-{tag}",
        [PY, "-m", "bridge.cli", "worker", "--workers", str(processes)],
        env,
        logs,
    )
    seen: dict[str, tuple[datetime, datetime, str]] = {}
    rss_samples: list[int] = []
    cpu_marks: dict[str, tuple[float, float, float, float]] = {}
    kafka_pid = kafka.pid()
    deadline = time.monotonic() + (60 if f.quick else 300)
    try:
        while len(seen) < count and time.monotonic() < deadline:
            if worker.proc.returncode is not None:
                raise RuntimeError(f"worker exited; see {worker.log_path}")
            with contextlib.suppress(OSError):
                rss_samples.append(status_kb(worker.pid, "VmRSS"))
            batches = await consumer.getmany(timeout_ms=250, max_records=20_000)
            for batch in batches.values():
                for record in batch:
                    r = json.loads(record.value)
                    seen[r["command_id"]] = (
                        datetime.fromisoformat(r["received_at"]),
                        datetime.fromisoformat(r["finished_at"]),
                        r["status"],
                    )
            if seen and "first" not in cpu_marks:
                cpu_marks["first"] = (worker.cpu(), sandbox.cpu(), cpu_seconds([kafka_pid or 0]),
                                      time.monotonic())  # fmt: skip
        cpu_marks["last"] = (worker.cpu(), sandbox.cpu(), cpu_seconds([kafka_pid or 0]),
                             time.monotonic())  # fmt: skip
        # With several processes the parent only waits: count the largest child.
        peak_kb = max(status_kb(pid, "VmHWM") for pid in tree(worker.pid))
    finally:
        await consumer.stop()
        await worker.stop()
        await sandbox.stop()
    done = len(seen)
    start = min(v[0] for v in seen.values())
    end = max(v[1] for v in seen.values())
    latencies = sorted((v[1] - v[0]).total_seconds() * 1000 for v in seen.values())
    first, last = cpu_marks["first"], cpu_marks["last"]
    span = max(1e-9, last[3] - first[3])
    result = {
        "count": count,
        "done": done,
        "statuses": dict(Counter(v[2] for v in seen.values())),
        "seconds": (end - start).total_seconds(),
        "rate": done / max(1e-9, (end - start).total_seconds()),
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "in_flight": in_flight,
        "processes": processes,
        "limit": processes * in_flight / SANDBOX_LATENCY,
        "peak_rss_mb": peak_kb / 1024,
        "rss_end_mb": (rss_samples[-1] if rss_samples else 0) / 1024,
        "worker_cpu": (last[0] - first[0]) / span,
        "sandbox_cpu": (last[1] - first[1]) / span,
        "kafka_cpu": (last[2] - first[2]) / span,
    }
    result["ratio"] = result["rate"] / result["limit"]
    log(f"commands {tag}: {result}")
    return result
