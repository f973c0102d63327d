"""End offsets of a topic's partitions in one ``ListOffsets`` request per leader, prepared once.

A receiver asks for the command ledger's end offsets many times a second while callbacks
come (``bridge.kafka.follower``). aiokafka's ``end_offsets()`` builds the request anew each
time, under a timeout and a ``gather`` of one coroutine per leader, a large share of a round's
CPU (``python -m bench.cpu end-offsets``).
This sends the request aiokafka would, on the consumer's own client, and falls back to
``end_offsets()`` (which refreshes metadata and retries) whenever the leaders are not known,
a request fails or a partition answers with an error.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.protocol.offset import OffsetRequest

Offsets = dict[TopicPartition, int]

#: ListOffsets' timestamp for "the offset after the last record" (the high watermark).
LATEST = -1
#: The replica id of a client (not a broker) in a ListOffsets request.
CLIENT = -1
#: read_uncommitted, as the consumer reads: the end is the high watermark.
READ_UNCOMMITTED = 0


class EndOffsets:
    """``consumer.end_offsets(partitions)``, cheaper when nothing is amiss."""

    def __init__(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        self._consumer = consumer
        self._partitions = partitions
        self._topic_of = {(tp.topic, tp.partition): tp for tp in partitions}
        # (leaders, requests by leader), rebuilt when the cluster's leaders change.
        self._plan: tuple[tuple[Any, ...], list[tuple[int, OffsetRequest]]] | None = None

    async def fetch(self) -> Offsets:
        """The offset after the last record of every partition, as of a moment after the call."""
        plan = self._requests()
        if plan is not None:
            send = self._client.send
            try:
                if len(plan) == 1:  # the usual case on a small cluster: no gather
                    responses = [await send(*plan[0])]
                else:
                    responses = await asyncio.gather(*(send(*p) for p in plan))
            except KafkaError:
                responses = []
            ends = self.read(responses)
            if ends is not None:
                return ends
        fetched: Offsets = await self._consumer.end_offsets(self._partitions)
        return fetched

    @property
    def _client(self) -> Any:
        # The consumer's own connection and metadata; aiokafka has no public raw-request API.
        return self._consumer._client

    def _requests(self) -> list[tuple[int, OffsetRequest]] | None:
        cluster = self._client.cluster
        leaders = tuple(cluster.leader_for_partition(tp) for tp in self._partitions)
        if any(leader is None or leader < 0 for leader in leaders):
            return None
        if self._plan is None or self._plan[0] != leaders:
            by_leader: dict[int, dict[str, list[tuple[int, int]]]] = {}
            for tp, leader in zip(self._partitions, leaders, strict=True):
                by_leader.setdefault(leader, {}).setdefault(tp.topic, []).append(
                    (tp.partition, LATEST)
                )
            requests = [
                (leader, OffsetRequest(CLIENT, READ_UNCOMMITTED, list(topics.items())))
                for leader, topics in by_leader.items()
            ]
            self._plan = (leaders, requests)
        return self._plan[1]

    def read(self, responses: list[Any]) -> Offsets | None:
        """The offsets in ``responses``; ``None`` if any partition failed or is missing."""
        ends: Offsets = {}
        for response in responses:
            if response.API_VERSION < 1:  # v0 answers with a list of offsets: aiokafka's job
                return None
            for topic, partitions in response.topics:
                for partition, error_code, _timestamp, offset, *_ in partitions:
                    tp = self._topic_of.get((topic, partition))
                    if error_code != 0 or tp is None:
                        return None
                    ends[tp] = offset
        return ends if len(ends) == len(self._partitions) else None
