"""The command ledger: at most one FoneStorm call per ``command_id``.

A compacted Kafka topic keyed by ``command_id`` records each command's state:

* ``placing`` is written (and acknowledged by all in-sync replicas) *before* the create-call
  request, with the command record's ``topic/partition/offset``;
* ``pending`` is written when a request certainly did not create a call (FoneStorm refused our
  token) and the command will be retried later;
* ``done`` is written with the final :class:`PlaceCallResult` before that result is published
  and before the command's offset is committed.

Every worker reads the whole ledger at start and keeps following it, and catches up to its end
before touching newly assigned partitions. So, after redelivery, rebalance or a crash:

* ``done`` + same record → the result is published again (the crash hit between ledger and
  offset commit; consumers see the same result twice, keyed by ``command_id``);
* ``done`` + another record → a ``duplicate`` result, no call;
* ``placing`` not in flight here → the process died during the request: FoneStorm may or may not
  have created the call, so the result is ``in_doubt`` (``at-most-once``, the default) or the
  call is placed again (``at-least-once``).

A command id is remembered for ``BRIDGE_WORKER__LEDGER_RETENTION`` after its last ledger write
(7 days by default): entries older than that are dropped from memory and skipped when the ledger
is read at start, so memory and start-up time follow the command rate, not the age of the
deployment; a copy of a command arriving later than that is placed as a new command. An old
``done`` is remembered by the hash of its id and where its record is, and read back from the
ledger topic when a job needs it (:mod:`bridge.commands.remembered`).

Partitions added to the ledger topic are followed from their beginning once the follower sees
them. A command's records then lie on two partitions (its key maps to another one): within a
partition the later record wins, across partitions the state decides, and ``done`` is never
replaced by an unfinished entry (:func:`bridge.commands.remembered.replaces`).

Copies of one command under other keys (or a worker that still acts after its partitions moved)
can handle one ``command_id`` in two places at once. Each handling (a job) names itself in the
entries it writes (``writer``), :meth:`Ledger.watch` shows it every record of its command that
the follower reads, and :mod:`bridge.commands.claim` turns that into a compare-and-set: a write
counts only if no other writer's record came between what the job last read and the write.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, RecordMetadata
from pydantic import ValidationError

from bridge.commands.remembered import Known, Remembered, replaces
from bridge.contracts.base import utcnow
from bridge.contracts.commands import PlaceCallResult
from bridge.contracts.ledger import LedgerEntry, LedgerState, parse_entry, read_entry
from bridge.kafka.follower import TopicFollower
from bridge.kafka.publisher import Publisher
from bridge.retrying import retry
from bridge.settings import Settings

log = logging.getLogger(__name__)


class Follower(Protocol):
    """What the ledger needs of :class:`~bridge.kafka.follower.TopicFollower`."""

    @property
    def following(self) -> bool: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def end_offsets(self) -> dict[TopicPartition, int]: ...
    async def wait_for(self, ends: dict[TopicPartition, int]) -> None: ...
    async def catch_up(self) -> None: ...
    async def record_at(
        self, partition: int, offset: int
    ) -> ConsumerRecord[bytes, bytes] | None: ...
    @property
    def partitions(self) -> list[TopicPartition]: ...
    async def follow_added(self) -> None: ...


#: Builds the follower of ``topic`` that calls ``apply`` per record and ``on_batch`` after each
#: batch: another transport than Kafka (the in-memory one of the protocol simulation).
FollowerFactory = Callable[
    [str, Callable[[ConsumerRecord[bytes, bytes]], None], Callable[[], None]], Follower
]


class Position(NamedTuple):
    """Where a ledger record is: how far a job has read its command's records."""

    partition: int
    offset: int


#: Before any record.
NOWHERE = Position(-1, -1)


@dataclass(frozen=True)
class Seen:
    """One ledger record of a watched command, as the follower read it."""

    partition: int
    offset: int
    #: None for a tombstone or a value this version cannot read.
    entry: LedgerEntry | None


@dataclass
class Watch:
    """The ledger records of one command that the follower reads while the watch is open."""

    command_id: str
    seen: list[Seen] = field(default_factory=list)


class Ledger:
    """Follows the ledger topic into memory and appends to it."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        *,
        follow: FollowerFactory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        # What records' timestamps are compared with (a simulation's virtual clock).
        self._clock = clock
        self._topic = settings.topics.command_ledger
        self._publisher = publisher
        # The latest entry of each command and where its record is: the place orders our own
        # writes against the follower, which reads them back later.
        self._memory = Remembered(settings.worker.ledger_retention)
        self._retention = settings.worker.ledger_retention
        self._watches: dict[str, list[Watch]] = {}
        on_batch = lambda: self.forget_expired(clock())  # noqa: E731
        self._follower: Follower = (
            TopicFollower(settings.kafka, self._topic, self._apply_record, on_batch=on_batch)
            if follow is None
            else follow(self._topic, self._apply_record, on_batch)
        )

    async def get(self, command_id: str) -> LedgerEntry | None:
        """Latest known entry of a command.

        An old ``done`` is read back from the ledger topic, retried until Kafka answers.
        """
        while True:
            known = self._memory.lookup(command_id)
            if known is None:
                return None
            if known.value is not None:
                return parse_entry(known.value)
            record = await retry(
                functools.partial(self._follower.record_at, known.partition, known.offset),
                retry_on=KafkaError,
                what="reading a ledger entry back",
            )
            if self._memory.lookup(command_id) == known:  # else rewritten meanwhile: again
                return self._entry_read_back(command_id, known, record)

    def _entry_read_back(
        self, command_id: str, known: Known, record: ConsumerRecord[bytes, bytes] | None
    ) -> LedgerEntry:
        if record is not None and record.key == command_id.encode():
            entry = read_entry(record.value)
            if entry is not None and entry.state is LedgerState.DONE:
                return entry
        # Another id sharing the hash, or the record gone (retention deletes it about when
        # the id is forgotten): the command finished, how exactly is unknown. Not a call.
        where = f"{self._topic}/{known.partition}/{known.offset}"
        log.warning(
            "the ledger entry of command %s (%s) cannot be read back; taking it as finished",
            command_id, where,
        )  # fmt: skip
        assert known.status is not None  # noqa: S101 - only a done with a result is compact
        now = utcnow()
        result = PlaceCallResult(
            command_id=command_id, status=known.status, received_at=now, finished_at=now
        )
        return LedgerEntry(
            command_id=command_id, state=LedgerState.DONE, source=where, result=result,
            updated_at=now,
        )  # fmt: skip

    def version(self, command_id: str) -> Position:
        """Where the command's latest known entry is; :data:`NOWHERE` when there is none."""
        known = self._memory.lookup(command_id)
        return NOWHERE if known is None else Position(known.partition, known.offset)

    def watched(self, command_id: str) -> bool:
        """Whether a job has read the ledger for ``command_id`` and is handling it now."""
        return command_id in self._watches

    @contextmanager
    def watch(self, command_id: str) -> Iterator[Watch]:
        """Collect every record of ``command_id`` the follower reads from now on."""
        watch = Watch(command_id)
        self._watches.setdefault(command_id, []).append(watch)
        try:
            yield watch
        finally:
            watches = self._watches[command_id]
            watches.remove(watch)
            if not watches:
                del self._watches[command_id]

    def __len__(self) -> int:
        return len(self._memory)

    @property
    def following(self) -> bool:
        """Reading the ledger: false before start and while the read fails (it is retried)."""
        return self._follower.following

    async def start(self) -> None:
        """Read the ledger from the beginning and follow it (raises ``KafkaError`` if it can't)."""
        await self._follower.start()

    async def stop(self) -> None:
        """Stop following."""
        await self._follower.stop()

    def _apply_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        # A record without a timestamp (-1) counts as written now.
        written_at = record.timestamp / 1000 if record.timestamp >= 0 else self._clock()
        if self._watches and record.key is not None:
            watches = self._watches.get(record.key.decode(errors="replace"))
            if watches:
                seen = Seen(record.partition, record.offset, read_entry(record.value))
                for watch in watches:
                    watch.seen.append(seen)
        self._apply(record.key, record.value, record.partition, record.offset, written_at)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """Where the ledger ends now: what :meth:`wait_for` can be asked to reach."""
        return await self._follower.end_offsets()

    async def wait_for(self, ends: dict[TopicPartition, int]) -> None:
        """Until every entry before ``ends`` has been read."""
        await self._follower.wait_for(ends)

    async def catch_up(self) -> None:
        """Until every entry written to the ledger before now has been read."""
        await self._follower.catch_up()

    async def read_back(self, written: RecordMetadata) -> None:
        """Until the follower has read the record ``written`` and, on every partition the
        ledger has now, all that was acknowledged before it.

        Producers disagree on how many partitions the ledger has for a while after some were
        added (each refreshes its metadata every few minutes), and put a command's records on
        two partitions: a claim must read another writer's that came first on the other one,
        even on a partition this follower has not looked for yet.
        """
        follower = self._follower
        await retry(
            follower.follow_added, retry_on=KafkaError, what="listing the ledger's partitions"
        )
        tp = TopicPartition(self._topic, written.partition)
        ends = {tp: written.offset + 1}
        if len(follower.partitions) > 1:
            ends = dict(
                await retry(
                    follower.end_offsets, retry_on=KafkaError, what="reading the ledger's end"
                )
            )
            ends[tp] = max(ends.get(tp, 0), written.offset + 1)
        await follower.wait_for(ends)

    def _apply(
        self,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        offset: int,
        written_at: float,
    ) -> None:
        now = self._clock()
        if key is None or written_at < now - self._retention:
            # Older than the retention: Kafka deletes such segments lazily, so they can
            # still be read, but the worker has forgotten them.
            return
        command_id = key.decode(errors="replace")
        known = self._memory.lookup(command_id)
        # Our own write is applied when acknowledged; reading it back, or a record before it,
        # must not put an earlier state over it (placing over done), but a done before it
        # takes its place (:func:`replaces`).
        if value is None:
            if replaces(known, partition, offset, None):
                self._memory.forget(command_id)
            return
        try:
            entry = parse_entry(value)
        except ValidationError:
            log.warning("ignoring unreadable ledger record for key %r", key)
            return
        if replaces(known, partition, offset, entry.state):
            self._memory.put(
                command_id, _known(partition, offset, entry, value), written_at=written_at, now=now
            )

    def forget_expired(self, now: float) -> None:
        """Drop entries last written more than the retention ago (amortised O(1))."""
        self._memory.expire(now)

    async def record(self, entry: LedgerEntry) -> RecordMetadata:
        """Append ``entry``, wait for acks=all, and apply it locally at once."""
        value = entry.model_dump_json().encode()
        metadata = await self._publisher.publish(self._topic, value, key=entry.command_id.encode())
        known = self._memory.lookup(entry.command_id)
        if replaces(known, metadata.partition, metadata.offset, entry.state):
            now = self._clock()
            known = _known(metadata.partition, metadata.offset, entry, value)
            self._memory.put(entry.command_id, known, written_at=now, now=now)
        return metadata


def _known(partition: int, offset: int, entry: LedgerEntry, value: bytes) -> Known:
    status = None if entry.result is None else entry.result.status
    return Known(partition, offset, entry.state, status, value)
