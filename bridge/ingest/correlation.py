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
from collections import OrderedDict

from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from bridge.kafka.follower import TopicFollower
from bridge.kafka.topics import ensure_topics
from bridge.retrying import retry
from bridge.settings import Settings
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Correlation = tuple[str | None, str | None]
_NONE: Correlation = (None, None)


class CallCorrelator:
    """Follows ``placed`` results; answers which command placed a call."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._wait = settings.callbacks.correlation_wait
        self._max = settings.callbacks.correlation_cache_size
        self._calls: OrderedDict[str, Correlation] = OrderedDict()
        # Start where results from the last lookback window begin: older calls are over.
        self._follower = TopicFollower(
            settings.kafka,
            settings.topics.place_call_results,
            self._apply,
            since=settings.callbacks.correlation_lookback,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start following in the background (retrying until Kafka answers)."""
        self._task = asyncio.create_task(self._connect(), name="call-correlator")

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._follower.stop()

    async def _connect(self) -> None:
        topic = self._settings.topics.place_call_results

        async def connect() -> None:
            await ensure_topics(self._settings, [topic])
            await self._follower.start()

        await retry(connect, retry_on=KafkaError, what=f"following {topic}")

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            result = json.loads(record.value or b"")
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

    async def lookup(self, call_id: str, *, wait: bool) -> Correlation:
        """``(command_id, correlation_id)`` of ``call_id``; ``wait`` lets the follower catch up."""
        found = self._calls.get(call_id)
        if found is not None or not wait or not self._follower.started or self._wait <= 0:
            return found or _NONE

        def known() -> bool:
            return call_id in self._calls

        try:
            async with asyncio.timeout(self._wait):
                await self._follower.wait_for(await self._follower.end_offsets(), known)
                # Caught up with everything written before the callback came. The worker
                # writes its result right after FoneStorm answers, which can be just after
                # FoneStorm's first callback: allow it a short grace.
                async with asyncio.timeout(min(self._wait, 0.25)):
                    while not known():
                        await self._follower.progress()
        except (TimeoutError, KafkaError):
            pass
        return self._calls.get(call_id, _NONE)
