"""What every phase stands on: paths, ports, subprocesses and their CPU, the Kafka broker.

Nothing here knows what is measured; the phases (``callbacks_in``, ``commands_out``) and
``wrk`` build on it, so starting, watching and stopping things is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.dedicated_broker import Broker
from tests.support.kafka_records import from_beginning, read_up_to
from tests.support.paths import REPO_ROOT
from tests.support.processes import stop

ROOT = REPO_ROOT
BENCH = ROOT / "bench"
PY = sys.executable
PY_SPY = Path(PY).parent / "py-spy"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Processes and their CPU
# --------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def cpu_seconds(pids: Iterable[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def status_kb(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Proc:
    name: str
    proc: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(tree(self.pid))

    async def stop(self) -> None:
        await stop(self.proc, grace=30)


async def spawn(
    name: str, args: list[str], env: dict[str, str], logs: Path, cwd: Path = ROOT
) -> Proc:
    log_path = logs / f"{name}.log"
    with log_path.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *args, env={**os.environ, **env}, stdout=out, stderr=out, cwd=cwd
        )
    return Proc(name, proc, log_path)


async def _send_get(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection with ``GET url`` sent on it (plain sockets: no client library in the way)."""
    host, port_path = url.removeprefix("http://").split(":", 1)
    port, path = port_path.split("/", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    return reader, writer


async def http_get(url: str) -> str:
    """The body of ``GET url``."""
    reader, writer = await _send_get(url)
    response = await reader.read()
    writer.close()
    return response.partition(b"\r\n\r\n")[2].decode()


async def wait_http(url: str, proc: Proc, limit: float = 60.0) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.proc.returncode is not None:
            raise RuntimeError(f"{proc.name} exited; see {proc.log_path}")
        with contextlib.suppress(OSError):
            reader, writer = await _send_get(url)
            line = await reader.readline()
            writer.close()
            if b" 200 " in line:
                return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{proc.name} not ready at {url}; see {proc.log_path}")


# --------------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------------


@dataclass
class Kafka(Broker):
    """A local-kafka instance of the bench's own, started and stopped in this process."""

    def pid(self) -> int | None:
        path = ROOT / ".local" / "kafka" / self.name / "kafka.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().strip())
        return None

    def start(self) -> None:
        subprocess.run(  # noqa: S603 - our own script, fixed arguments
            [*self.args("start"), "--fresh", "--timeout", "120"],
            check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run(  # noqa: S603 - our own script, fixed arguments
            [*self.args("stop"), "--purge"],
            check=False, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip


async def create_topics(bootstrap: str, names: list[str], compacted: Iterable[str] = ()) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        compact = set(compacted)
        await admin.create_topics(
            [
                NewTopic(
                    n,
                    num_partitions=6,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "compact"} if n in compact else {},
                )
                for n in names
            ]
        )
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20,
        max_batch_size=256 * 1024,
    )  # fmt: skip
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def read_topic(bootstrap: str, topic: str, *, max_seconds: float = 180.0) -> list[Any]:
    """Every record of ``topic`` up to its end offsets at the time of the call, or what was
    read of them in ``max_seconds``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    try:
        ends = await from_beginning(consumer, topic)
        records: list[Any] = []
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline and not await read_up_to(consumer, ends):
            for batch in (await consumer.getmany(timeout_ms=500, max_records=20_000)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()
