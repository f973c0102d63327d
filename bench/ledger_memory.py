"""The worker's memory per remembered command id: a million ids through the ledger, in-process.

    .venv/bin/python -m bench.ledger_memory [--ids N] [--tracemalloc] [--json]

Feeds the ledger records of ``N`` commands (1,000,000 by default) to the ledger's ``apply``,
the path the follower takes for every record read, without Kafka: per command a ``placing``
then a ``done`` with a placed result, as the worker writes them, 1,000 commands per batch as a
follower applies them, written over the last six days (a seven-day retention remembers them
all, and they are older than the ledger keeps whole entries). Then it prints the growth of the
process's RSS per remembered id (with ``--tracemalloc``: the bytes Python allocated and still
holds per id instead; tracemalloc's own bookkeeping makes the RSS figure meaningless then, so
the two are separate runs, and the traced one takes minutes). ``make bench`` reports the RSS
figure, measured in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

if not __package__:  # `python bench/ledger_memory.py`: import `bench` and `bridge` from the repo
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from aiokafka.structs import ConsumerRecord

from bridge.commands.ledger import Ledger
from bridge.kafka.publisher import Publisher
from bridge.settings import Settings

IDS = 1_000_000
BATCH = 1_000
#: Spread of the records' timestamps: within the default seven-day retention.
SPAN = 6 * 86400.0
TOPIC = "fonestorm.place-call.v1"


class _Idle:
    """A follower that never reads: the records come from this module."""

    following = True
    partitions: ClassVar[list[Any]] = []

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def end_offsets(self) -> dict[Any, int]:
        return {}

    async def wait_for(self, ends: dict[Any, int]) -> None: ...
    async def catch_up(self) -> None: ...
    async def record_at(self, partition: int, offset: int) -> None:
        return None


def _entry(command_id: str, state: str, at: str, source: str, writer: str) -> bytes:
    """A ledger value as the worker writes it (the same fields and sizes), without pydantic."""
    entry: dict[str, Any] = {
        "command_id": command_id,
        "state": state,
        "source": source,
        "result": None,
        "updated_at": at,
        "fonenumber": "+13215551081",
        "to": "+13215550100",
        "writer": writer,
    }
    if state == "done":
        entry["result"] = {
            "command_id": command_id,
            "status": "placed",
            "call_id": str(uuid.uuid4()),
            "attempts": 1,
            "error_code": None,
            "error_message": None,
            "correlation_id": f"order-{command_id[:8]}",
            "metadata": {"campaign": "reminders"},
            "received_at": at,
            "finished_at": at,
        }
    return json.dumps(entry, separators=(",", ":")).encode()


def _records(ids: int, now: float) -> Any:
    """Batches of ledger records: ``placing`` and ``done`` of each command, oldest first."""
    offset = 0
    for start in range(0, ids, BATCH):
        batch = []
        for n in range(start, min(start + BATCH, ids)):
            written = now - SPAN + SPAN * n / ids
            at = datetime.fromtimestamp(written, UTC).isoformat()
            command_id, writer = str(uuid.uuid4()), uuid.uuid4().hex
            source = f"{TOPIC}/{n % 6}/{n // 6}"
            key = command_id.encode()
            for state in ("placing", "done"):
                value = _entry(command_id, state, at, source, writer)
                record = ConsumerRecord(
                    topic="ledger", partition=n % 6, offset=offset,
                    timestamp=int(written * 1000), timestamp_type=0, key=key, value=value,
                    checksum=None, serialized_key_size=len(key),
                    serialized_value_size=len(value), headers=(),
                )  # fmt: skip
                batch.append(record)
                offset += 1
        yield batch


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(ids: int, *, traced: bool) -> dict[str, float]:
    """Feed ``ids`` commands' records to a ledger; its memory per id, as measured here."""
    applies: list[Callable[[ConsumerRecord[bytes, bytes]], None]] = []

    def follow(topic: str, apply: Callable[[ConsumerRecord[bytes, bytes]], None], _: Any) -> Any:
        applies.append(apply)  # what the follower calls per record
        return _Idle()

    ledger = Ledger(Settings(), cast(Publisher, None), follow=follow)
    [apply] = applies
    now = time.time()
    gc.collect()
    rss_before = _rss_kb()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    for batch in _records(ids, now):
        for record in batch:
            apply(record)
        ledger.forget_expired(now)  # what the follower does after each batch
    elapsed = time.perf_counter() - started
    del batch, record
    gc.collect()
    figures: dict[str, float] = {
        "ids": ids,
        "remembered": len(ledger),
        "seconds": elapsed,
        "us_per_record": elapsed / (2 * ids) * 1e6,
    }
    if traced:
        figures["traced_bytes_per_id"] = tracemalloc.get_traced_memory()[0] / ids
        tracemalloc.stop()
    else:
        figures["rss_bytes_per_id"] = (_rss_kb() - rss_before) * 1024 / ids
    return figures


def run(ids: int = IDS) -> dict[str, float]:
    """The RSS measurement in a fresh interpreter (what ``make bench`` reports)."""
    out = subprocess.run(  # noqa: S603 - this very module
        [sys.executable, "-m", "bench.ledger_memory", "--ids", str(ids), "--json"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    figures: dict[str, float] = json.loads(out)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--ids", type=int, default=IDS)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    figures = measure(args.ids, traced=args.tracemalloc)
    if args.json:
        print(json.dumps(figures))
        return 0
    for name, value in figures.items():
        print(f"{name}: {value:,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
