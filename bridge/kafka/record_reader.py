"""Read one record of a topic by partition and offset: what the ledger keeps of an old entry.

The worker keeps only where an old ``done`` ledger entry is (:mod:`bridge.commands.remembered`)
and reads the entry back when a job needs it, which is rare: a copy of an old command, or a
redelivery after a long outage. One consumer of its own, opened at the first read and kept,
serves those reads one at a time, apart from the follower's connections so that neither waits
behind the other's fetches.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError
from aiokafka.structs import ConsumerRecord

from bridge.kafka.options import client_options
from bridge.kafka.starting import start_or_close
from bridge.settings import KafkaSettings


class RecordReader:
    """Reads single records of ``topic``."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self._settings = settings
        self._topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def read(self, partition: int, offset: int) -> ConsumerRecord[bytes, bytes] | None:
        """The record at ``offset`` of ``partition``; None when it is no longer there.

        Compaction removes a record once a later one of its key exists, retention once it is
        old enough. Raises ``KafkaError`` when Kafka does not answer.
        """
        async with self._lock:
            consumer = await self._started()
            tp = TopicPartition(self._topic, partition)
            consumer.assign([tp])
            ends = await consumer.end_offsets([tp])
            if offset >= ends[tp]:
                return None
            consumer.seek(tp, offset)
            # Some record at or after ``offset`` exists: the last one before the end is never
            # compacted or deleted.
            while True:
                try:
                    batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
                except OffsetOutOfRangeError:  # deleted from the start of the partition
                    return None
                for record in batch.get(tp, ()):
                    return record if record.offset == offset else None

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **client_options(self._settings),
                group_id=None,
                enable_auto_commit=False,
                # An offset no longer in the log is answered, not skipped over.
                auto_offset_reset="none",
            )
            await start_or_close(consumer.start, consumer.stop)
            self._consumer = consumer
        return self._consumer

    async def stop(self) -> None:
        """Close the consumer, if a read opened one."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
