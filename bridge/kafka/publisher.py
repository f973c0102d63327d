"""Kafka producer of the bridge: acks=all, idempotent, readiness that follows the broker.

The producer starts in the background and keeps retrying, so the process comes up (and reports
not-ready) even when Kafka does not answer yet; :meth:`Publisher.publish` fails fast with
:class:`PublishError` until it does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.client import ConnectionGroup
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import RecordMetadata

from bridge.contracts.base import VersionedEvent, utcnow
from bridge.contracts.signing import SIGNATURE_HEADER, sign
from bridge.deadlines import Deadlines
from bridge.errors import PublishError, RecordRejected
from bridge.kafka.cloudevents import cloudevent_headers
from bridge.kafka.options import client_options
from bridge.kafka.partitioner import partition_for
from bridge.kafka.readiness import probe_may_restore
from bridge.kafka.starting import start_or_close
from bridge.obs import tracing
from bridge.obs.metrics import Metrics
from bridge.retrying import retry
from bridge.schema_registry.ids import SchemaIds
from bridge.settings import KafkaSettings
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]
# Errors about the record, not the cluster: the same record will fail again.
_RECORD_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)


async def _ask_any_broker(client: AIOKafkaClient) -> None:
    """A metadata request (brokers only) answered by any broker; :class:`KafkaError` if none.

    Over connections of their own (aiokafka's coordination group, which a producer without
    transactions leaves unused): a broker answers a connection's requests in order, and a
    produce request can wait there for its in-sync replicas until the producer's request
    timeout (a replica's broker died and is not fenced yet), while the broker is fine.
    """
    failures = []
    for node_id in [broker.nodeId for broker in client.cluster.brokers()]:
        try:
            await client.send(node_id, MetadataRequest([]), group=ConnectionGroup.COORDINATION)
        except KafkaError as exc:
            failures.append(f"node {node_id}: {exc!r}")
        else:
            return
    raise KafkaError(f"no broker answered a metadata request: {failures}")


class Publisher:
    """Produces records and tells whether Kafka is reachable."""

    #: Seconds between broker health probes.
    probe_interval: float = 2.0

    def __init__(self, settings: KafkaSettings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._producer: AIOKafkaProducer | None = None
        self._ready = False
        #: When the last produce failed; None once one has succeeded since (see _probe).
        self._failed_at: float | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._reachable = asyncio.Event()
        self._missing_topics: frozenset[str] = frozenset()
        self._replacing = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()
        # Not asyncio.timeout: one timer per produce cost a tenth of a callback (bridge.deadlines).
        self._deadlines = Deadlines(settings.produce_timeout)
        #: Registry mode: the schema-id headers every published record gets (set at start).
        self.schema_ids: SchemaIds | None = None

    @property
    def ready(self) -> bool:
        """True while the producer is started and Kafka takes records: the last produce
        succeeded, or none failed lately and the last metadata probe succeeded."""
        return self._ready and not self._stopping

    @property
    def kafka_client(self) -> Any:
        """The started producer's ``AIOKafkaClient`` (metadata, connections), else None."""
        return None if self._producer is None else self._producer.client

    @property
    def missing_topics(self) -> list[str]:
        """Topics known not to exist (reported by a :class:`~bridge.kafka.topics.TopicWatch`)."""
        return sorted(self._missing_topics)

    def id_headers(self, topic: str, schema_uri: str) -> Headers:
        """Registry mode: the headers naming the registered schema of such a record; else ()."""
        ids = self.schema_ids
        return () if ids is None else ids.headers(topic, schema_uri)

    def set_missing_topics(self, names: list[str]) -> None:
        """Refuse to produce to ``names`` at once, instead of waiting for their metadata."""
        self._missing_topics = frozenset(names)

    async def wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109
        """Until Kafka has answered once; :class:`PublishError` after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._reachable.wait()
        except TimeoutError:
            raise PublishError(
                f"Kafka at {self._settings.bootstrap_servers} is not reachable"
            ) from None

    def _set_ready(self, ready: bool, reason: str = "") -> None:
        if ready:
            self._reachable.set()
        if ready != self._ready:
            if ready:
                log.info("Kafka is reachable at %s", self._settings.bootstrap_servers)
            else:
                log.warning("Kafka is not reachable: %s", reason)
            self._metrics.kafka_ready.set(1 if ready else 0)
        self._ready = ready

    def _new_producer(self) -> AIOKafkaProducer:
        s = self._settings
        return AIOKafkaProducer(
            **(client_options(s) | {"request_timeout_ms": s.producer_request_timeout_ms}),
            acks="all",
            # Not aiokafka's default: without it a retried batch can be written twice.
            enable_idempotence=True,
            linger_ms=s.linger_ms,
            partitioner=partition_for,
            compression_type=None if s.compression_type == "none" else s.compression_type,
        )

    async def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        self._task = asyncio.create_task(self._run(), name="kafka-producer")

    async def _run(self) -> None:
        producer = self._new_producer()

        async def failed(exc: BaseException) -> None:
            nonlocal producer
            self._set_ready(False, f"cannot bootstrap: {exc}")
            producer = self._new_producer()  # the failed one is closed

        # A lambda, not the bound method: a failed producer is replaced by a new one.
        await retry(
            lambda: start_or_close(producer.start, producer.stop),
            retry_on=KafkaError, what="starting the Kafka producer", on_failure=failed,
        )  # fmt: skip
        self._producer = producer
        self._set_ready(True)
        while True:
            await asyncio.sleep(self.probe_interval)
            await self._probe()

    async def _probe(self) -> None:
        assert self._producer is not None  # noqa: S101 - only called once started
        try:
            async with asyncio.timeout(self._settings.produce_timeout):
                await _ask_any_broker(self._producer.client)
        except (KafkaError, TimeoutError) as exc:
            self._set_ready(False, f"metadata probe failed: {exc!r}")
        else:
            hold = self._settings.produce_timeout + self.probe_interval
            if probe_may_restore(self._failed_at, time.monotonic(), hold):
                self._set_ready(True)

    def begin_shutdown(self) -> None:
        """Report not-ready from now on, so load balancers stop sending traffic."""
        self._stopping = True

    async def stop(self) -> None:
        """Flush what is pending and close the producer."""
        self._stopping = True
        if self._task is not None:
            await cancel_and_wait(self._task)
        async with self._replacing:  # a producer being replaced is not left open
            pass
        for retired in list(self._retired):
            await asyncio.wait([retired])
        if self._producer is not None:
            # stop() flushes the accumulator before closing.
            await self._producer.stop()
            self._producer = None
        self._metrics.kafka_ready.set(0)

    async def publish(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()
    ) -> RecordMetadata:
        """Produce one record and wait for the broker's acknowledgement (acks=all).

        Raises :class:`PublishError` when Kafka does not acknowledge within the produce timeout,
        :class:`RecordRejected` when it refuses the record itself (too large). Concurrent
        callers are batched by the producer; nothing here serialises them.
        """
        producer = self._producer
        if producer is None:
            self._metrics.produce_errors.labels(topic).inc()
            raise PublishError("Kafka is not reachable; retry later")
        if topic in self._missing_topics:
            # Without auto-creation the producer would wait for metadata that never comes.
            self._metrics.produce_errors.labels(topic).inc()
            raise PublishError(f"topic {topic!r} does not exist yet; retry later")
        started = time.perf_counter()
        sent = False
        record_headers = list(headers)
        try:
            with self._deadlines(), tracing.producing(topic, record_headers) as span:
                future = await producer.send(topic, value=value, key=key, headers=record_headers)
                sent = True
                metadata: RecordMetadata = await future
                tracing.produced(span, metadata.partition, metadata.offset)
        except _RECORD_ERRORS as exc:
            self._metrics.produce_errors.labels(topic).inc()
            if sent:
                # Refused by the broker, not by the producer's own check: see _replace.
                await self._replace(producer, f"the broker refused a record for {topic}")
            raise RecordRejected(f"Kafka refused the record for {topic}: {exc!r}") from exc
        except OutOfOrderSequenceNumber as exc:
            self._metrics.produce_errors.labels(topic).inc()
            await self._replace(producer, f"the broker refused the sequence number for {topic}")
            raise PublishError(f"Kafka refused the record for {topic}; retry later") from exc
        except (TimeoutError, KafkaError) as exc:
            self._metrics.produce_errors.labels(topic).inc()
            self._failed_at = time.monotonic()
            self._set_ready(False, f"produce to {topic} failed: {exc!r}")
            raise PublishError(
                f"Kafka did not acknowledge within {self._settings.produce_timeout:g}s; retry later"
            ) from exc
        self._metrics.child(self._metrics.produce_latency, topic).observe(
            time.perf_counter() - started
        )
        self._failed_at = None
        self._set_ready(True)
        return metadata

    async def _replace(self, failed: AIOKafkaProducer, why: str) -> None:
        """A new producer in place of ``failed``, whose sequence numbers no longer match.

        aiokafka's idempotent producer counts a record's sequence number when it sends it,
        and a record the broker refuses (too large for the topic) is not taken back: every
        later record to that partition is refused as out of order, for the producer's life.
        A new producer has a new producer id, and so sequence numbers from zero. Never
        raises: if it cannot start, the next refusal tries again.
        """
        async with self._replacing:
            current = self._producer is failed
            if not current or self._stopping:
                return  # replaced already, or shutting down
            producer = self._new_producer()
            try:
                async with asyncio.timeout(self._settings.produce_timeout):
                    await start_or_close(producer.start, producer.stop)
            except (TimeoutError, KafkaError) as exc:
                log.warning("%s; starting a new Kafka producer failed: %r", why, exc)
                return
            self._producer = producer
        log.warning("%s; the Kafka producer was replaced by a new one", why)
        # Records still queued on the old one are flushed (those to the refused partition
        # fail, and their callers retry on the new one).
        retiring = asyncio.create_task(failed.stop(), name="kafka-producer-retired")
        self._retired.add(retiring)
        retiring.add_done_callback(self._retired_stopped)

    def _retired_stopped(self, task: asyncio.Task[None]) -> None:
        self._retired.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("stopping a replaced Kafka producer failed: %r", exc)

    async def publish_event(
        self,
        topic: str,
        event: VersionedEvent,
        *,
        source: str,
        key: str | None = None,
        signing_key: bytes | None = None,
    ) -> RecordMetadata:
        """Produce ``event`` as a CloudEvent in binary content mode, with its own attributes.

        ``key`` overrides the event's own record key (a command's dead letter is keyed by the
        command id, so it lands beside the command's other records). ``signing_key`` adds the
        dead-letter signature header over the value (:mod:`bridge.contracts.signing`).
        """
        dataschema = event.schema_id()
        headers = cloudevent_headers(
            event_id=event.ce_id,
            source=source,
            ce_type=event.ce_type,
            time=event.ce_time or utcnow(),
            subject=event.ce_subject,
            dataschema=dataschema,
        )
        headers.extend(self.id_headers(topic, dataschema))
        key = event.kafka_key if key is None else key
        value = event.model_dump_json().encode()
        if signing_key is not None:
            headers.append((SIGNATURE_HEADER, sign(signing_key, value)))
        return await self.publish(
            topic, value, key=key.encode() if key is not None else None, headers=headers
        )
