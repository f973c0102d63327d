"""Tags callbacks of calls the bridge placed with their ``command_id`` and ``correlation_id``.

Every receiver replica follows the place-call results topic (no consumer group: each replica
reads every partition) and remembers ``call_id → (command_id, correlation_id)`` of ``placed``
results, so whichever replica FoneStorm calls back can tag the event. A callback may overtake
the result that announces its call, so an unknown outbound call waits, bounded by
``BRIDGE_CALLBACKS__CORRELATION_WAIT``, for the follower to catch up with the topic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from bridge.kafka.options import client_options, topic_partitions
from bridge.kafka.topics import ensure_topics
from bridge.settings import Settings

log = logging.getLogger(__name__)

Correlation = tuple[str | None, str | None]
_NONE: Correlation = (None, None)


class CallCorrelator:
    """Follows ``placed`` results; answers which command placed a call."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = settings.topics.place_call_results
        self._wait = settings.callbacks.correlation_wait
        self._max = settings.callbacks.correlation_cache_size
        self._calls: OrderedDict[str, Correlation] = OrderedDict()
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()

    async def start(self) -> None:
        """Start following in the background (retrying until Kafka answers)."""
        self._task = asyncio.create_task(self._run(), name="call-correlator")

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        if self._consumer is not None:
            await self._consumer.stop()

    async def _connect(self) -> None:
        await ensure_topics(self._settings, [self._topic])
        consumer = AIOKafkaConsumer(
            **client_options(self._settings.kafka), group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = await topic_partitions(consumer, self._topic)
            consumer.assign(tps)
            # Start where results from the last lookback window begin: older calls are over.
            since = int((time.time() - self._settings.callbacks.correlation_lookback) * 1000)
            starts = await consumer.offsets_for_times(dict.fromkeys(tps, since))
            for tp in tps:
                found = starts.get(tp)
                if found is None:
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, found.offset)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer, self._partitions = consumer, tps

    async def _run(self) -> None:
        backoff = 0.5
        while self._consumer is None:
            try:
                await self._connect()
            except KafkaError as exc:
                log.warning("cannot follow %s yet (%r); retrying", self._topic, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                for record in records:
                    self._apply(record.value)
            self._progress.set()
            self._progress = asyncio.Event()

    def _apply(self, value: bytes | None) -> None:
        try:
            result = json.loads(value or b"")
        except ValueError:
            return
        if not isinstance(result, dict) or result.get("status") != "placed":
            return
        call_id = result.get("call_id")
        if isinstance(call_id, str):
            self._calls[call_id] = (result.get("command_id"), result.get("correlation_id"))
            self._calls.move_to_end(call_id)
            while len(self._calls) > self._max:
                self._calls.popitem(last=False)

    async def _caught_up(self, end: dict[TopicPartition, int]) -> bool:
        assert self._consumer is not None  # noqa: S101
        for tp in self._partitions:
            if await self._consumer.position(tp) < end[tp]:
                return False
        return True

    async def lookup(self, call_id: str, *, wait: bool) -> Correlation:
        """``(command_id, correlation_id)`` of ``call_id``; ``wait`` lets the follower catch up."""
        found = self._calls.get(call_id)
        if found is not None or not wait or self._consumer is None or self._wait <= 0:
            return found or _NONE
        try:
            async with asyncio.timeout(self._wait):
                end = await self._consumer.end_offsets(self._partitions)
                while call_id not in self._calls and not await self._caught_up(end):
                    await self._progress.wait()
                # Caught up with everything written before the callback came. The worker
                # writes its result right after FoneStorm answers, which can be just after
                # FoneStorm's first callback: allow it a short grace.
                async with asyncio.timeout(min(self._wait, 0.25)):
                    while call_id not in self._calls:
                        await self._progress.wait()
        except (TimeoutError, KafkaError):
            pass
        return self._calls.get(call_id, _NONE)
