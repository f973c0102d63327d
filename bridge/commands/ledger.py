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
deployment; a copy of a command arriving later than that is placed as a new command.

Copies of one command under other keys (or a worker that still acts after its partitions moved)
can handle one ``command_id`` in two places at once. Each handling (a job) names itself in the
entries it writes (``writer``), :meth:`Ledger.watch` shows it every record of its command that
the follower reads, and :mod:`bridge.commands.claim` turns that into a compare-and-set: a write
counts only if no other writer's record came between what the job last read and the write.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata
from pydantic import ValidationError

from bridge.contracts.ledger import LedgerEntry, parse_entry, read_entry
from bridge.kafka.follower import TopicFollower
from bridge.kafka.publisher import Publisher
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


#: Builds the follower of ``topic`` that calls ``apply`` per record and ``on_batch`` after each
#: batch: another transport than Kafka (the in-memory one of the protocol simulation).
FollowerFactory = Callable[
    [str, Callable[[ConsumerRecord[bytes, bytes]], None], Callable[[], None]], Follower
]


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
        self, settings: Settings, publisher: Publisher, *, follow: FollowerFactory | None = None
    ) -> None:
        self._settings = settings
        self._topic = settings.topics.command_ledger
        self._publisher = publisher
        # The latest entry of each command as (ledger offset, JSON): a parsed LedgerEntry takes
        # ~2.6 KB, its JSON ~0.4 KB, and the map holds every command of one retention window.
        # The offset orders our own writes against the follower, which reads them back later.
        self._entries: dict[str, tuple[int, bytes]] = {}
        # (time written, command_id, offset) in the order applied, to forget entries older
        # than BRIDGE_WORKER__LEDGER_RETENTION without scanning the map.
        self._written: deque[tuple[float, str, int]] = deque()
        self._retention = settings.worker.ledger_retention
        self._watches: dict[str, list[Watch]] = {}
        on_batch = lambda: self.forget_expired(time.time())  # noqa: E731
        self._follower: Follower = (
            TopicFollower(settings.kafka, self._topic, self._apply_record, on_batch=on_batch)
            if follow is None
            else follow(self._topic, self._apply_record, on_batch)
        )

    def get(self, command_id: str) -> LedgerEntry | None:
        """Latest known entry of a command."""
        found = self._entries.get(command_id)
        return None if found is None else parse_entry(found[1])

    def version(self, command_id: str) -> int:
        """The ledger offset of the command's latest known entry; -1 when there is none."""
        found = self._entries.get(command_id)
        return -1 if found is None else found[0]

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
        return len(self._entries)

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
        written_at = record.timestamp / 1000 if record.timestamp >= 0 else time.time()
        if self._watches and record.key is not None:
            watches = self._watches.get(record.key.decode(errors="replace"))
            if watches:
                seen = Seen(record.partition, record.offset, read_entry(record.value))
                for watch in watches:
                    watch.seen.append(seen)
        self._apply(record.key, record.value, record.offset, written_at)

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
        """Until the follower has read the record ``written`` (and all before it)."""
        await self._follower.wait_for(
            {TopicPartition(self._topic, written.partition): written.offset + 1}
        )

    def _apply(
        self, key: bytes | None, value: bytes | None, offset: int, written_at: float
    ) -> None:
        if key is None or written_at < time.time() - self._retention:
            # Older than the retention: Kafka deletes such segments lazily, so they can
            # still be read, but the worker has forgotten them.
            return
        command_id = key.decode(errors="replace")
        known = self._entries.get(command_id)
        if known is not None and known[0] >= offset:
            # Our own write, applied when it was acknowledged, or older than it: reading it
            # back must not put an earlier state over a later one (placing over done).
            return
        if value is None:
            self._entries.pop(command_id, None)
            return
        try:
            entry = parse_entry(value)
        except ValidationError:
            log.warning("ignoring unreadable ledger record for key %r", key)
            return
        self._entries[entry.command_id] = (offset, value)
        self._written.append((written_at, entry.command_id, offset))

    def forget_expired(self, now: float) -> None:
        """Drop entries last written more than the retention ago (amortised O(1))."""
        cutoff = now - self._retention
        written = self._written
        while written and written[0][0] < cutoff:
            _, command_id, offset = written.popleft()
            known = self._entries.get(command_id)
            if known is not None and known[0] == offset:  # not rewritten since
                del self._entries[command_id]

    async def record(self, entry: LedgerEntry) -> RecordMetadata:
        """Append ``entry``, wait for acks=all, and apply it locally at once."""
        value = entry.model_dump_json().encode()
        metadata = await self._publisher.publish(self._topic, value, key=entry.command_id.encode())
        known = self._entries.get(entry.command_id)
        if known is None or known[0] < metadata.offset:
            self._entries[entry.command_id] = (metadata.offset, value)
            self._written.append((time.time(), entry.command_id, metadata.offset))
        return metadata
