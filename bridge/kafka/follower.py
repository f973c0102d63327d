"""Follow every partition of one topic into memory, and know when that memory is up to date.

The command ledger (every worker) and the call correlator (every receiver) both read a whole
topic without a consumer group, apply each record to an in-memory map, and must be able to
wait until they have read everything written before a given moment. This is that loop, once.
Partitions added to the topic while it runs are followed too, from their beginning, within
:attr:`TopicFollower.partitions_check` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from bridge.kafka.catch_up import CatchUp
from bridge.kafka.coalesced import Coalesced
from bridge.kafka.end_offsets import EndOffsets, Offsets
from bridge.kafka.options import client_options, topic_partitions
from bridge.kafka.record_reader import RecordReader
from bridge.kafka.starting import start_or_close
from bridge.retrying import backoff_delays
from bridge.settings import KafkaSettings
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Apply = Callable[[ConsumerRecord[bytes, bytes]], None]


class TopicFollower:
    """Reads ``topic`` from a start point into ``apply``; :meth:`catch_up` waits for the end.

    ``since`` (seconds) starts at the first record written that long ago on each partition
    (the end where there is none); ``None`` reads from the beginning. ``end_offsets_spacing``
    (seconds) is the least time between two rounds, and ``on_round`` is told how long
    (seconds) each round that succeeded took to prove (see
    :class:`~bridge.kafka.catch_up.CatchUp`).

    A failure of the background read (a broker error aiokafka does not retry, or ``apply``
    raising) is logged, :attr:`following` turns false, and the read starts again on a new
    consumer from the last positions reached, with backoff: ``apply`` may see the records of
    the batch that failed again. Waiters keep waiting meanwhile.
    """

    #: Seconds between looks for partitions added to the topic.
    partitions_check = 5.0

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        apply: Apply,
        *,
        since: float | None = None,
        batch: int = 5000,
        on_batch: Callable[[], None] | None = None,
        end_offsets_spacing: float = 0.0,
        on_round: Callable[[float], None] | None = None,
        consumer_factory: Callable[..., AIOKafkaConsumer] = AIOKafkaConsumer,
    ) -> None:
        self._settings = settings
        self._consumer_factory = consumer_factory
        self.topic = topic
        self._apply = apply
        self._since = since
        self._batch = batch
        self._on_batch = on_batch
        self._consumer: AIOKafkaConsumer | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._next_check = -math.inf
        self._look_failed = False
        self._reader = RecordReader(settings, topic)
        self._end_offsets: EndOffsets | None = None
        self._task: asyncio.Task[None] | None = None
        self._failure: Exception | None = None
        self._read_to = CatchUp(
            self._fetch_end_offsets,
            spacing=end_offsets_spacing,
            on_round=on_round,
            name=f"catch-up-{topic}",
        )
        self._listed = Coalesced(self._list_partitions, name=f"partitions-{topic}")

    @property
    def started(self) -> bool:
        """Connected and reading."""
        return self._consumer is not None

    @property
    def partitions(self) -> list[TopicPartition]:
        """The partitions followed."""
        return list(self._partitions)

    @property
    def following(self) -> bool:
        """Started, and the background read is not failing (false until it reads again)."""
        return self._consumer is not None and self._failure is None

    async def start(self) -> None:
        """Assign every partition, seek to the start point, follow in the background.

        Raises ``KafkaError`` when Kafka or the topic is not there; nothing is left open then.
        """
        consumer = self._new_consumer()
        await start_or_close(consumer.start, consumer.stop)
        # End offsets on a connection of their own: the broker answers one connection's
        # requests in order, so a ListOffsets queued behind the follower's long-polling fetch
        # waited up to fetch_max_wait_ms (500 ms) each time.
        offsets = self._new_consumer()
        try:
            await start_or_close(offsets.start, offsets.stop)
            partitions = await topic_partitions(consumer, self.topic)
            consumer.assign(partitions)
            await self._seek_start(consumer, partitions)
        except BaseException:
            await offsets.stop()
            await consumer.stop()
            raise
        self._consumer, self._offsets, self._partitions = consumer, offsets, partitions
        self._next_check = time.monotonic() + self.partitions_check
        self._end_offsets = EndOffsets(offsets, partitions)
        self._task = asyncio.create_task(self._follow(), name=f"follow-{self.topic}")

    async def _seek_start(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> None:
        if self._since is None:
            await consumer.seek_to_beginning(*partitions)
            return
        since_ms = int((time.time() - self._since) * 1000)
        starts = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        for tp in partitions:
            found = starts.get(tp)
            if found is None:
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, found.offset)

    def _new_consumer(self) -> AIOKafkaConsumer:
        return self._consumer_factory(
            **client_options(self._settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def stop(self) -> None:
        """Stop following and close the consumers."""
        await self._read_to.stop()
        await self._listed.stop()
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        for consumer in (self._offsets, self._consumer):
            if consumer is not None:
                await consumer.stop()
        await self._reader.stop()
        self._consumer = self._offsets = None
        self._end_offsets = None

    async def _follow(self) -> None:
        delays = backoff_delays()
        while True:
            try:
                if self._failure is not None:
                    await self._reconnect()
                await self._read()
            except Exception as exc:  # whatever it is, the read must go on
                first, self._failure = self._failure is None, exc
                if first:
                    delays = backoff_delays()
                delay = next(delays)
                # ERROR: until it reads again, this process works from a stale copy.
                log.log(
                    logging.ERROR if first else logging.WARNING,
                    "following %s failed (%r); reading on from where it stopped in %.1fs",
                    self.topic, exc, delay, exc_info=exc if first else None,
                )  # fmt: skip
                await asyncio.sleep(delay)

    async def _reconnect(self) -> None:
        # The old consumer may be broken in ways a seek does not mend: a new one, placed
        # where the last complete batch left off.
        old = self._consumer
        if old is not None:
            await old.stop()
        consumer = self._new_consumer()
        await start_or_close(consumer.start, consumer.stop)
        try:
            consumer.assign(self._partitions)
            positions = self._read_to.positions
            unread = [tp for tp in self._partitions if tp not in positions]
            if unread:
                await self._seek_start(consumer, unread)
            for tp, offset in positions.items():
                consumer.seek(tp, offset)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer

    async def _read(self) -> None:
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - started
        self._read_to.advance(await self._positions_of(consumer))
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=self._batch)
            for records in batches.values():
                for record in records:
                    self._apply(record)
            if self._on_batch is not None:
                self._on_batch()
            if time.monotonic() >= self._next_check:
                await self._follow_added(consumer)
            positions = await self._positions_of(consumer)
            if self._failure is not None:
                log.info("following %s again", self.topic)
                self._failure = None
            self._read_to.advance(positions)

    async def _follow_added(self, consumer: AIOKafkaConsumer) -> None:
        """Assign partitions added to the topic since the last look, from their beginning."""
        self._next_check = time.monotonic() + self.partitions_check
        assert self._offsets is not None  # noqa: S101 - started
        try:
            partitions = await topic_partitions(self._offsets, self.topic)
        except KafkaError as exc:  # the next look may work; reading goes on meanwhile
            # Once per streak: a broker restart would repeat it every partitions_check.
            level = logging.DEBUG if self._look_failed else logging.WARNING
            self._look_failed = True
            log.log(level, "looking for partitions added to %s failed: %r", self.topic, exc)
            return
        self._look_failed = False
        added = [tp for tp in partitions if tp not in self._partitions]
        if not added:
            return
        log.info(
            "following partitions %s added to %s, from their beginning",
            [tp.partition for tp in added], self.topic,
        )  # fmt: skip
        everything = self._partitions + added
        consumer.assign(everything)  # forgets every position: put them back
        for tp, offset in self._read_to.positions.items():
            consumer.seek(tp, offset)
        await consumer.seek_to_beginning(*added)
        self._partitions = everything
        self._end_offsets = EndOffsets(self._offsets, everything)

    async def follow_added(self) -> None:
        """Until every partition the topic has as of a moment after this call is followed.

        Raises ``KafkaError`` when the metadata request fails.
        """
        partitions = await self._listed.get()
        missing = [tp for tp in partitions if tp not in self._partitions]
        if missing:
            self._next_check = -math.inf  # the read loop assigns them after its current batch
            while any(tp not in self._partitions for tp in missing):
                await self._read_to.progress()

    async def _list_partitions(self) -> list[TopicPartition]:
        assert self._offsets is not None  # noqa: S101 - started
        return await topic_partitions(self._offsets, self.topic)

    async def _positions_of(self, consumer: AIOKafkaConsumer) -> Offsets:
        # Once per batch, so that reached() costs waiters no await per partition; a position
        # moves only in getmany() (it may skip offsets that hold no record: compaction).
        return {tp: await consumer.position(tp) for tp in self._partitions}

    async def record_at(self, partition: int, offset: int) -> ConsumerRecord[bytes, bytes] | None:
        """The record at ``offset`` of ``partition``, or None when it is gone (see
        :class:`~bridge.kafka.record_reader.RecordReader`); raises ``KafkaError``."""
        return await self._reader.read(partition, offset)

    async def end_offsets(self) -> Offsets:
        """The offset after the last record of every partition, as of a moment after this call,
        once everything before them has been applied (:meth:`CatchUp.end_offsets
        <bridge.kafka.catch_up.CatchUp.end_offsets>`)."""
        return await self._read_to.end_offsets()

    async def _fetch_end_offsets(self) -> Offsets:
        assert self._end_offsets is not None  # noqa: S101 - started
        return await self._end_offsets.fetch()

    async def wait_for(self, ends: Offsets, until: Callable[[], bool] = lambda: False) -> None:
        """Until everything before ``ends`` has been applied, or ``until()`` holds."""
        await self._read_to.wait_for(ends, until)

    async def catch_up(self) -> None:
        """Until everything written to the topic before this call has been applied."""
        await self._read_to.end_offsets()

    def caught_up(self) -> asyncio.Future[Offsets]:
        """Done once everything written to the topic before this call has been applied
        (:meth:`CatchUp.caught_up <bridge.kafka.catch_up.CatchUp.caught_up>`)."""
        return self._read_to.caught_up()

    async def progress(self) -> None:
        """Until the next batch (possibly empty) has been applied."""
        await self._read_to.progress()

    @property
    def proven(self) -> float:
        """Everything written before this moment (``time.monotonic()``) has been applied
        (:attr:`CatchUp.proven <bridge.kafka.catch_up.CatchUp.proven>`)."""
        return self._read_to.proven

    def refresh(self, older_than: float) -> None:
        """Start a round with no caller if none is under way and the proof is that old (s)
        (:meth:`CatchUp.refresh <bridge.kafka.catch_up.CatchUp.refresh>`). Only once
        :attr:`started`."""
        self._read_to.refresh(older_than)
