"""``dead-letters replay``: the decisions of :mod:`~bridge.dead_letters.decision`, written so that
no dead letter is ever replayed twice.

**Why a Kafka transaction.** Each batch of dead letters (one fetch, at most
:data:`~bridge.dead_letters.reading.BATCH`) is written in one transaction: the replayed records
(events, commands) and, for every dead letter decided, its replay record on the compacted
replay topic. Either both are committed or neither is, so the replay record never claims a
record that is not there, and a record is never there without its replay record. A replay
that crashes or loses Kafka half-way leaves an aborted batch and committed batches; run again,
it skips what was committed (``read_committed`` read of the replay topic at start) and does the
rest. Produce-then-record instead leaves a window (after the record, before its replay record)
in which a crash makes the next run produce it again.

The transactional id is fixed per replay topic, so starting a replay *fences* any other one
still running against the same topic (its next write fails with ``ProducerFenced``) and
completes or aborts whatever transaction it left open, *before* the replay topic is read. Two
replays can therefore not both decide that a dead letter is still to do.

The same transaction writes an audit record (:mod:`~bridge.dead_letters.audit`) for every dead
letter the batch replayed or found still invalid.

What the transaction does not cover: consumers reading ``read_uncommitted`` (Kafka's default,
and the worker's) also see records of an aborted batch, which the next run produces again.
Those are the same records (a callback's event has the same ``event_id``, so ``ce_id``; a
command the same ``command_id``, which the worker's ledger places at most once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from bridge.contracts.base import utcnow
from bridge.contracts.calls import CallEvent
from bridge.contracts.commands import PlaceCallCommand
from bridge.dead_letters.audit import audit_record, bridge_version, operator
from bridge.dead_letters.decision import Decision, ReplayContext, decide, max_age
from bridge.dead_letters.escaping import escape
from bridge.dead_letters.integrity import check
from bridge.dead_letters.model import Entry, ProducedTo, ReplayRecord, Selection
from bridge.dead_letters.reading import (
    Record,
    group_less_consumer,
    parse_entry,
    read_ledger,
    read_range,
    read_replays,
)
from bridge.dead_letters.summary import Progress, Tally, decision_line, progress_line
from bridge.kafka.live_brokers import NoLiveBrokerError, wait_for_live_broker
from bridge.kafka.options import client_options
from bridge.kafka.partitioner import partition_for
from bridge.kafka.starting import start_or_close
from bridge.kafka.topics import MissingTopicsError, ensure_topics
from bridge.schema_registry.client import RegistryError
from bridge.schema_registry.registration import look_up, new_client
from bridge.settings import Settings
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Prefix of the transactional id (grant it ``WRITE`` and ``DESCRIBE`` where ACLs are on).
TRANSACTIONAL_ID_PREFIX = "fonestorm-bridge.dead-letter-replay."


class ReplayFailed(Exception):
    """The replay stopped; the message says why and what is safe to do."""


Headers = tuple[tuple[str, bytes], ...]


async def _id_headers(settings: Settings) -> tuple[Headers, Headers]:
    """Registry mode: the id headers of replayed call events and commands; else nothing.

    Looked up, not registered: the bridge registers its schemas at start, and a replay writes
    only records of schemas it has registered.
    """
    if settings.schemas.registry_url is None:
        return (), ()
    client = new_client(settings.schemas)
    topics = settings.topics
    try:
        event = await look_up(client, topics.call_events, CallEvent)
        command = await look_up(client, topics.place_call, PlaceCallCommand)
    except RegistryError as exc:
        raise ReplayFailed(
            f"registry mode: the schema ids of replayed records are not at hand ({exc}); "
            "nothing was replayed"
        ) from exc
    finally:
        await client.close()
    return tuple(event.headers()), tuple(command.headers())


def transactional_id(settings: Settings) -> str:
    """One id per replay topic: concurrent replays of the same dead letters fence each other."""
    return TRANSACTIONAL_ID_PREFIX + settings.topics.dead_letter_replays


@dataclass
class Output:
    """Where the replay writes: lines per dead letter (``out``), progress (``err``)."""

    out: TextIO
    err: TextIO
    verbose: bool = False


class Replayer:
    """One run of ``dead-letters replay`` (or ``--dry-run``); :attr:`tally` counts it."""

    def __init__(
        self,
        settings: Settings,
        selection: Selection,
        output: Output,
        *,
        dry_run: bool = False,
        allow_unsigned: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._selection = selection
        self._output = output
        self._dry_run = dry_run
        self._allow_unsigned = allow_unsigned
        self._clock = clock
        self.tally = Tally()
        kafka = settings.kafka
        self._operator = operator(settings.kafka)
        self._version = bridge_version()
        # Long enough for a produce and the commit, each within the client's request timeout.
        self._write_timeout = 2 * kafka.request_timeout_ms / 1000 + kafka.produce_timeout
        self._abort_timeout = kafka.request_timeout_ms / 1000

    async def run(self) -> None:
        """Replay every selected dead letter; :class:`ReplayFailed` when it cannot go on."""
        producer = None if self._dry_run else await self._start_producer()
        try:
            await self._replay(producer)
        except UnknownTopicOrPartitionError:
            raise ReplayFailed(
                f"topic {self._settings.topics.dead_letters} does not exist"
            ) from None
        except KafkaError as exc:
            raise ReplayFailed(f"reading from Kafka failed: {exc}") from exc
        finally:
            if producer is not None:
                await _stop(producer, self._abort_timeout)

    async def _start_producer(self) -> AIOKafkaProducer:
        settings = self._settings
        topic = settings.topics.dead_letter_replays
        audit = settings.topics.dead_letter_audit
        try:
            await ensure_topics(settings, [topic, audit])
        except MissingTopicsError as exc:
            problems = []
            if topic in exc.topics:
                problems.append(
                    f"the replay topic {topic} does not exist: create it compacted "
                    "(cleanup.policy=compact)"
                )
            if audit in exc.topics:
                problems.append(
                    f"the audit topic {audit} does not exist: create it not compacted "
                    "(cleanup.policy=delete) with the retention audits need"
                )
            raise ReplayFailed(
                "; ".join(problems) + "; or run the replay with BRIDGE_KAFKA__CREATE_TOPICS=true"
            ) from exc
        except KafkaError as exc:
            raise ReplayFailed(f"cannot reach Kafka: {exc}") from exc
        kafka = settings.kafka
        producer = AIOKafkaProducer(
            **client_options(kafka),
            acks="all",
            enable_idempotence=True,
            transactional_id=transactional_id(settings),
            partitioner=partition_for,  # where the receiver and producers put the same keys
            linger_ms=kafka.linger_ms,
            compression_type=None if kafka.compression_type == "none" else kafka.compression_type,
        )
        wait = kafka.request_timeout_ms / 1000
        try:
            # start() looks up the transaction coordinator among the brokers it knows, and
            # cannot while Kafka names none (a fenced broker): bootstrap and wait for one first.
            await start_or_close(producer.client.bootstrap, producer.stop)
            await wait_for_live_broker(producer.client, within=wait, what="starting the producer")
            # start() registers the transactional id: this fences an earlier replay.
            async with asyncio.timeout(wait):
                await producer.start()
        except NoLiveBrokerError as exc:
            await producer.stop()
            raise ReplayFailed(f"{exc}; nothing was replayed, run the replay again") from exc
        except (KafkaError, TimeoutError) as exc:
            await producer.stop()
            raise ReplayFailed(
                f"cannot start a transactional producer ({exc!r}): the brokers need a "
                "transaction state log (transaction.state.log.replication.factor and min.isr "
                "within the broker count) and, with ACLs, WRITE on the transactional id "
                f"{transactional_id(settings)!r}"
            ) from exc
        return producer

    async def _replay(self, producer: AIOKafkaProducer | None) -> None:
        settings, selection = self._settings, self._selection
        kafka, topics = settings.kafka, settings.topics
        # After the producer started (and fenced any other replay): nothing changes it now.
        previous = await read_replays(kafka, topics.dead_letter_replays) or {}
        ledger = await read_ledger(kafka, topics.command_ledger)
        event_ids, command_ids = await _id_headers(settings) if producer is not None else ((), ())
        context = ReplayContext(
            call_events=topics.call_events,
            place_call=topics.place_call,
            region=settings.callbacks.default_region,
            max_body_bytes=settings.http.max_body_bytes,
            ce_source=settings.callbacks.source,
            now=utcnow(),
            max_age=max_age(settings.worker.ledger_retention),
            ledger=ledger,
            allow_unsigned=self._allow_unsigned,
            event_id_headers=event_ids,
            command_id_headers=command_ids,
        )
        progress = Progress(self._clock())
        async with group_less_consumer(kafka) as consumer:
            batches = read_range(
                consumer,
                topics.dead_letters,
                since=selection.since,
                until=selection.until,
                stall_timeout=kafka.request_timeout_ms / 1000,
            )
            async for batch in batches:
                decided = self._decide(batch, previous, context)
                if producer is not None:
                    previous.update(await self._write(producer, decided))
                for _, decision in decided:
                    self.tally.add(decision)
                    self._say(decision_line(decision, dry_run=self._dry_run))
                if progress.due(self.tally.read, self._clock()):
                    print(progress_line(self.tally), file=self._output.err, flush=True)

    def _decide(
        self, batch: list[Record], previous: dict[str, ReplayRecord], context: ReplayContext
    ) -> list[tuple[Entry, Decision]]:
        decisions = []
        keys = self._settings.dead_letters
        # A second dead letter under an id this batch replays (a copy, or a forgery reusing a
        # real one's id) is already replayed, as it would be in a later batch.
        replayed_now: dict[str, ReplayRecord] = {}
        for entry in map(parse_entry, batch):
            if not self._selection.wants(entry):
                continue
            letter = entry.letter
            if letter is None:
                self.tally.add_unreadable()
                self._say(f"unreadable       {escape(entry.where)}  {escape(entry.error or '')}")
                continue
            integrity = check(entry.value, entry.signatures, keys.key_for(letter.source))
            before = replayed_now.get(letter.dead_letter_id) or previous.get(letter.dead_letter_id)
            decision = decide(letter, before, context, integrity=integrity)
            if decision.outcome == "replayed":
                replayed_now[letter.dead_letter_id] = ReplayRecord(
                    dead_letter_id=letter.dead_letter_id, outcome="replayed", replayed_at=utcnow()
                )
            decisions.append((entry, decision))
        return decisions

    def _say(self, line: str) -> None:
        if self._dry_run or self._output.verbose:
            print(line, file=self._output.out)

    async def _write(
        self, producer: AIOKafkaProducer, decided: list[tuple[Entry, Decision]]
    ) -> dict[str, ReplayRecord]:
        """The batch's records, replay records and audit records in one transaction; the
        replay records written."""
        todo = [(e, d) for e, d in decided if d.outcome != "already_replayed"]
        if not todo:
            return {}
        replayed = [(e, d) for e, d in todo if d.outgoing is not None]
        topics = self._settings.topics
        now = utcnow()
        try:
            # The outer bound is the abort's: a timeout cancels the write once, and the abort
            # that follows waits for Kafka again.
            async with (
                asyncio.timeout(self._write_timeout + self._abort_timeout),
                asyncio.timeout(self._write_timeout),
                producer.transaction(),
            ):
                sent = [
                    await producer.send(
                        o.topic,
                        o.value,
                        key=o.key,
                        headers=list(o.headers),
                        timestamp_ms=o.timestamp_ms,
                    )
                    for _, d in replayed
                    if (o := d.outgoing) is not None
                ]
                # Their offsets go into the replay records: wait for the acknowledgements
                # (still inside the transaction: nothing is visible before the commit).
                written = await asyncio.gather(*sent)
                where: dict[int, ProducedTo] = {}
                for (_, d), m in zip(replayed, written, strict=True):
                    _check_timestamp_kept(d, m.timestamp_type)
                    where[id(d)] = ProducedTo(topic=m.topic, partition=m.partition, offset=m.offset)
                # The last decision of an id wins: a refused forgery of a real dead letter's id
                # decided before it leaves `replayed` (one after it is `already_replayed`).
                records = {
                    d.letter.dead_letter_id: _record(d, now, where.get(id(d))) for _, d in todo
                }
                for dead_letter_id, record in records.items():
                    await producer.send(
                        topics.dead_letter_replays,
                        record.model_dump_json().encode(),
                        key=dead_letter_id.encode(),
                    )
                for entry, d in todo:
                    audit = audit_record(
                        d,
                        dead_letter=ProducedTo(
                            topic=topics.dead_letters,
                            partition=entry.partition,
                            offset=entry.offset,
                        ),
                        produced_to=where.get(id(d)),
                        at=now,
                        who=self._operator,
                        allow_unsigned=self._allow_unsigned,
                        version=self._version,
                    )
                    await producer.send(
                        topics.dead_letter_audit,
                        audit.model_dump_json().encode(),
                        key=d.letter.dead_letter_id.encode(),
                    )
        except (KafkaError, TimeoutError) as exc:
            raise ReplayFailed(
                f"a batch of {len(todo)} dead letters was not committed ({exc!r}): none of it "
                "counts as replayed; run the replay again to do it"
            ) from exc
        return records


async def _stop(producer: AIOKafkaProducer, within: float) -> None:
    """``producer.stop()``, bounded: it waits until Kafka takes every record the producer still
    holds, which a broker gone away (frozen, cut off) never does, so the run would never end.
    Those records are of a batch not committed; a later replay fences what is left of them."""
    stopping = asyncio.ensure_future(producer.stop())
    await asyncio.wait([stopping], timeout=within)
    if not stopping.done():
        log.warning("the replay's Kafka producer did not stop within %gs; closed", within)
        await cancel_and_wait(stopping)
        await producer.client.close()  # what stop() would have done last
    if not stopping.cancelled() and (exc := stopping.exception()) is not None:
        log.warning("stopping the replay's Kafka producer failed: %r", exc)


def _check_timestamp_kept(decision: Decision, timestamp_type: int) -> None:
    """Stop (the transaction aborts) if the broker replaced a replayed command's original
    timestamp: the worker's too_old guard would take an old command for a new one."""
    outgoing = decision.outgoing
    if outgoing is not None and outgoing.timestamp_ms is not None and timestamp_type == 1:
        raise ReplayFailed(
            f"topic {outgoing.topic} stamps records with the broker's time "
            "(message.timestamp.type=LogAppendTime), so a replayed command would lose its "
            "original time; nothing of the batch was committed. Set "
            "message.timestamp.type=CreateTime on it"
        )


def _record(decision: Decision, now: datetime, where: ProducedTo | None) -> ReplayRecord:
    letter = decision.letter
    return ReplayRecord.model_validate(
        {
            "dead_letter_id": letter.dead_letter_id,
            "source": letter.source,
            "outcome": decision.outcome,
            "reason_code": decision.reason_code,
            "reason": decision.reason,
            "replayed_at": now,
            "produced_to": where,
        }
    )
