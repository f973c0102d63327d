"""Produce records whose header names are not UTF-8, as librdkafka (kcat) or sarama can.

aiokafka's builders encode header names themselves, so a child process runs its pure-Python
builder (``AIOKAFKA_NO_EXTENSIONS=1``) with a name whose ``encode`` answers raw bytes; all the
records go into ONE batch, so a bad one can sit between good ones.

``python -m tests.support.raw_header_names BOOTSTRAP TOPIC PARTITION COMPRESSION`` reads a JSON
list of ``{"key", "value", "bad_header"}`` on stdin (``bad_header``: name bytes as latin-1).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tests.support.paths import REPO_ROOT


@dataclass(frozen=True)
class Raw:
    """One record: ``bad_header`` (latin-1 text of the raw name bytes) is added to its headers."""

    key: str
    value: str
    bad_header: str | None = None


class _RawName(str):
    """A header name whose UTF-8 encoding is whatever bytes it was given."""

    raw: bytes

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def _name(raw: bytes) -> str:
    name = _RawName("raw")
    name.raw = raw
    return name


async def _produce(bootstrap: str, topic: str, partition: int, compression: str | None) -> None:
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415 (after the environment is set)

    records = json.load(sys.stdin)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=compression)
    await producer.start()
    try:
        batch = producer.create_batch()
        for record in records:
            headers = [("ok", b"1")]
            if record["bad_header"] is not None:
                headers.append((_name(record["bad_header"].encode("latin-1")), b"x"))
            metadata = batch.append(
                key=record["key"].encode(),
                value=record["value"].encode(),
                timestamp=None,
                headers=headers,
            )
            assert metadata is not None, "the batch is full"
        await (await producer.send_batch(batch, topic, partition=partition))
    finally:
        await producer.stop()


def produce_one_batch(
    bootstrap: str, topic: str, partition: int, records: Sequence[Raw], compression: str = "none"
) -> None:
    """Write ``records`` to ``topic``/``partition`` as one batch."""
    subprocess.run(
        [sys.executable, "-m", __name__, bootstrap, topic, str(partition), compression],
        input=json.dumps([asdict(r) for r in records]),
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"},
        timeout=60,
    )


if __name__ == "__main__":
    assert os.environ.get("AIOKAFKA_NO_EXTENSIONS") == "1"
    bootstrap, topic, partition, compression = sys.argv[1:5]
    asyncio.run(
        _produce(bootstrap, topic, int(partition), None if compression == "none" else compression)
    )
