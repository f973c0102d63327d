"""Tags callbacks of calls the bridge placed with their ``command_id`` and ``correlation_id``.

Every receiver replica follows the command ledger (no consumer group: each replica reads every
partition, from ``BRIDGE_CALLBACKS__CORRELATION_LOOKBACK`` ago) and learns from it:

* ``done`` entries of placed commands: ``call_id → (command_id, correlation_id)``, written
  before the result is published, so earlier than the results topic could tell;
* ``placing`` entries: which ``(fonenumber, to)`` pairs have a create-call request in flight;
* ``done`` entries of ``in_doubt`` commands: their pair, so that a callback of a call no ``done``
  names can show it to be one of theirs (:mod:`bridge.ingest.doubts`).

The worker writes ``placing`` (acks=all) *before* it sends the request, so once this replica
has read the ledger up to where it ended when a callback arrived, it knows every placement that
could have produced that callback. An outbound callback of an unknown call then waits only
while a placement to the same pair is in flight (its ``done`` names the call), bounded by
``BRIDGE_CALLBACKS__CORRELATION_WAIT``; any other is produced at once. Events are tagged only
on an exact call id match, or when the callbacks prove an ``in_doubt`` command's call
(:func:`~bridge.ingest.doubts.weigh`).

Knowing the ledger "as of the callback" needs no round trip per callback: the worker waits
``BRIDGE_CALLBACKS__CORRELATION_HOLD`` between ``placing`` being acknowledged and sending the
request, so no callback of that call comes sooner. A ``ListOffsets`` round sent less than the
hold before a callback came, whose end offsets this replica has read up to, therefore covers
every placement that could have made it (both times are this process's monotonic clock).
While callbacks come, a round starts whenever the last one proven is old enough that a round
as slow as the recent ones would still land within the hold (:func:`refresh_after`), shared by
all of them, and the callbacks are answered at once; after a quiet spell the first ones wait
for one round. Tags missed all the same (a worker with a shorter hold) are counted
when the ``done`` comes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from bridge.contracts.calls import WORKER_SOURCE
from bridge.contracts.commands import ResultStatus
from bridge.contracts.ledger import LedgerState, read_entry
from bridge.deadlines import Deadlines
from bridge.ingest.doubts import Doubt, Doubts, Evidence, Verdict, reconciled_call, weigh
from bridge.ingest.ledger_rounds import (
    ROUND_MEMORY,
    Follower,
    FollowerFactory,
    ledger_follower,
    refresh_after,
)
from bridge.kafka.publisher import Publisher
from bridge.kafka.topics import TopicWatch
from bridge.obs.metrics import Metrics
from bridge.obs.tracing import record_traceparent
from bridge.retrying import retry
from bridge.settings import Settings
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Pair = tuple[str, str]
Numbers = tuple[str | None, str | None]


class Correlation(NamedTuple):
    """Which command placed a call, and the trace of its placement (when traced)."""

    command_id: str | None = None
    correlation_id: str | None = None
    traceparent: str | None = None
    #: The ``in_doubt`` command its callbacks showed the call to be, until the receiver has
    #: published its reconciled ``CallPlaced`` (:meth:`CallCorrelator.announce`).
    reconciled: Doubt | None = None


_NONE = Correlation()


#: Outbound call ids produced without a tag that are remembered (at least half as many), to
#: count the tags missed.
UNTAGGED_REMEMBERED = 65_536


class CallCorrelator:
    """Follows the command ledger; answers which command placed a call."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        follow: FollowerFactory | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._monotonic = monotonic
        self._wait = settings.callbacks.correlation_wait
        self._hold = settings.callbacks.correlation_hold
        # Until rounds have been timed, a round once the proof is a third of a hold old.
        self._slowest_round = self._hold / 3
        self._refresh_after = refresh_after(self._hold, self._slowest_round)
        self._round_seconds = metrics.ledger_rounds
        self._at_once = metrics.child(metrics.correlations, "at_once")
        self._untagged_recent: set[str] = set()
        self._untagged_older: set[str] = set()
        self._deadlines = Deadlines(self._wait)  # not asyncio.timeout: a timer per callback
        self._max = settings.callbacks.correlation_cache_size
        # A placement still in flight after this long lost its worker (whose successor writes
        # its own entry); without a bound, its pair would hold callbacks back for ever.
        self._in_flight_for = settings.worker.rebalance_timeout
        self._calls: OrderedDict[str, Correlation] = OrderedDict()
        # command_id -> (pair, when written), oldest first; and how many are in flight per pair.
        self._placing: OrderedDict[str, tuple[Pair, float]] = OrderedDict()
        self._pairs: Counter[Pair] = Counter()
        self._doubt_window = settings.callbacks.correlation_doubt_window
        self._doubts = Doubts(self._doubt_window, self._max)
        # Until the ledger topic is known to exist (then read) or not to: a replica ready
        # before would tag none of the calls placed before it started.
        self._checked = False
        self._replaying = False

        def on_batch() -> None:
            self._expire(time.time())

        follow = follow or ledger_follower(settings)
        self._follower: Follower = follow(self._apply, on_batch, self._round_proven)
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """False until the ledger topic is known to be missing, or its look-back is read."""
        return self._checked and not self._replaying

    async def start(self) -> None:
        """Start following in the background (retrying until Kafka answers)."""
        self._task = asyncio.create_task(self._connect(), name="call-correlator")

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._follower.stop()

    async def _connect(self) -> None:
        topic = self._settings.topics.command_ledger
        # A receiver-only deployment may run before any worker: one line, not one per retry.
        await TopicWatch(
            self._settings,
            [topic],
            what="correlating callbacks with commands (until then events carry no command_id)",
            level=logging.WARNING,
            on_change=self._ledger_missing,
        ).wait()
        self._checked = self._replaying = True
        try:
            await retry(self._follower.start, retry_on=KafkaError, what=f"following {topic}")
            await retry(self._follower.catch_up, retry_on=KafkaError, what=f"reading {topic}")
        finally:
            self._replaying = False
        log.info(
            "correlating callbacks: %d placed calls, %d placements in flight and %d commands "
            "in doubt from %s",
            len(self._calls),
            len(self._placing),
            len(self._doubts),
            topic,
        )

    def _ledger_missing(self, missing: list[str]) -> None:
        # No ledger yet (no worker ever ran): nothing to read, ready meanwhile.
        if missing:
            self._checked = True

    def _round_proven(self, seconds: float) -> None:
        self._round_seconds.observe(seconds)
        self._slowest_round = max(seconds, self._slowest_round * ROUND_MEMORY)
        self._refresh_after = refresh_after(self._hold, self._slowest_round)

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is None:
            return
        command_id = record.key.decode(errors="replace")
        placing = self._forget_placing(command_id)
        self._doubts.forget(command_id)
        entry = read_entry(record.value)
        if entry is None:
            return
        written = record.timestamp / 1000 if record.timestamp >= 0 else time.time()
        if entry.state is LedgerState.PLACING:
            if entry.fonenumber and entry.to:
                pair = (entry.fonenumber, entry.to)
                self._placing[command_id] = (pair, written)
                self._pairs[pair] += 1
            return
        result = entry.result
        if (
            entry.state is LedgerState.DONE
            and result is not None
            and result.status is ResultStatus.IN_DOUBT
            and entry.fonenumber
            and entry.to
            and self._doubt_window > 0
        ):
            doubt = Doubt(
                command_id=result.command_id,
                correlation_id=result.correlation_id,
                pair=(entry.fonenumber, entry.to),
                since=written if placing is None else placing[1],
                reported_at=result.finished_at,
                traceparent=record_traceparent(record),
            )
            self._doubts.add(doubt)
            return
        if (
            entry.state is LedgerState.DONE
            and result is not None
            and result.status is ResultStatus.PLACED
            and result.call_id
        ):
            self._calls[result.call_id] = Correlation(
                result.command_id, result.correlation_id, record_traceparent(record)
            )
            call_id = result.call_id
            if call_id in self._untagged_recent or call_id in self._untagged_older:
                self._untagged_recent.discard(call_id)
                self._untagged_older.discard(call_id)
                self._metrics.callback_tags_missed.inc()
                log.warning(
                    "a callback of call %s (command %s) was produced without command_id: its "
                    "placement was read too late (a worker's BRIDGE_CALLBACKS__CORRELATION_HOLD "
                    "below this receiver's?) or named it after BRIDGE_CALLBACKS__CORRELATION_WAIT",
                    result.call_id,
                    result.command_id,
                )
            self._calls.move_to_end(result.call_id)
            while len(self._calls) > self._max:
                self._calls.popitem(last=False)

    def _forget_placing(self, command_id: str) -> tuple[Pair, float] | None:
        found = self._placing.pop(command_id, None)
        if found is not None:
            pair = found[0]
            self._pairs[pair] -= 1
            if self._pairs[pair] <= 0:
                del self._pairs[pair]
        return found

    def _expire(self, now: float) -> None:
        # Oldest first, but a record's timestamp is the producer's clock: stop at the first
        # young one rather than scan everything.
        cutoff = now - self._in_flight_for
        while self._placing:
            command_id, (_, written) = next(iter(self._placing.items()))
            if written >= cutoff and len(self._placing) <= self._max:
                break
            self._forget_placing(command_id)
        self._doubts.expire(now)

    def in_flight(self, pair: Pair) -> bool:
        """Whether a placement from ``pair[0]`` to ``pair[1]`` is in flight (as read so far)."""
        return pair in self._pairs

    def known(self, call_id: str) -> Correlation:
        """What is known of ``call_id`` now, without waiting (all an inbound callback needs)."""
        return self._calls.get(call_id, _NONE)

    def at_once(self, call_id: str, numbers: Numbers) -> Correlation | None:
        """What an outbound callback that came now is tagged with, if that is known already.

        ``None``: the ledger read so far may predate a placement that made this call; the
        callback must :meth:`lookup`. ``numbers`` are its ``from`` and ``to`` in E.164.
        """
        found = self._calls.get(call_id)
        if found is not None:
            return found
        follower = self._follower
        if self._wait <= 0 or not follower.started:
            return _NONE
        if self._hold > 0:
            # One clock read for both questions: this runs for every such callback.
            age = self._monotonic() - follower.proven
            if age >= self._refresh_after:
                # Rounds while callbacks come keep the read recent enough for the next ones.
                follower.refresh(self._refresh_after)
            if age <= self._hold and numbers not in self._pairs:
                self._at_once.inc()
                return self._unknown(call_id, numbers, proven=True)
        return None

    async def lookup(self, call_id: str, numbers: Numbers) -> Correlation:
        """Which command placed ``call_id``, once the ledger is read as of now (module doc)."""
        how = "round_trip"
        read = False
        try:
            with self._deadlines():
                # Everything acknowledged before the callback came: every placement that could
                # have made this call is known from here on.
                await self._follower.caught_up()
                read = True
                if numbers in self._pairs:
                    how = "waited"
                while call_id not in self._calls and numbers in self._pairs:
                    await self._follower.progress()
        except TimeoutError:
            how = "timed_out"
        except KafkaError:
            how = "unavailable"
        self._metrics.child(self._metrics.correlations, how).inc()
        found = self._calls.get(call_id)
        if found is None:
            return self._unknown(call_id, numbers, proven=read)
        return found

    async def announce(self, publisher: Publisher, call_id: str, doubt: Doubt) -> None:
        """Publish the reconciled ``CallPlaced`` of ``call_id``, ``doubt``'s call.

        Once per call and replica: later callbacks of the call carry no :attr:`reconciled`.
        Other replicas and redeliveries publish the same event (the worker's id and source).
        """
        placed = reconciled_call(call_id, doubt)
        topic = self._settings.topics.call_events
        await publisher.publish_event(topic, placed, source=WORKER_SOURCE)
        found = self._calls.get(call_id)
        if found is not None and found.reconciled is not None:
            self._calls[call_id] = found._replace(reconciled=None)

    def _unknown(self, call_id: str, numbers: Numbers, *, proven: bool) -> Correlation:
        """A callback of a call no ``done`` names: an ``in_doubt`` command's, or nobody's.

        ``proven``: the ledger was read as of the callback.
        """
        if self._doubts:
            evidence = weigh(
                self._doubts.between(numbers),
                in_flight=numbers in self._pairs,
                proven=proven,
                now=time.time(),
                window=self._doubt_window,
            )
            if evidence.verdict is not Verdict.NONE:
                found = self._judged(call_id, evidence)
                if found is not None:
                    return found
        self._remember_untagged(call_id)
        return _NONE

    def _judged(self, call_id: str, evidence: Evidence) -> Correlation | None:
        self._metrics.child(self._metrics.callback_doubts, evidence.verdict.value).inc()
        doubt = evidence.doubt
        if doubt is None:
            if evidence.verdict is Verdict.UNPROVEN:
                why = "the ledger could not be read as of the callback"
            elif len(evidence.candidates) > 1:
                why = "more than one command in doubt may have placed it"
            else:
                why = "a placement to the same numbers is in flight"
            fonenumber, to = evidence.candidates[0].pair
            log.warning(
                "callback of call %s produced without command_id, no guess: %s (commands in "
                "doubt from %s to %s within BRIDGE_CALLBACKS__CORRELATION_DOUBT_WINDOW: %s)",
                call_id,
                why,
                fonenumber,
                to,
                ", ".join(d.command_id for d in evidence.candidates),
            )
            return None
        log.info(
            "call %s is the call of command %s, reported in_doubt: its callbacks are tagged "
            "and a reconciled call.placed follows",
            call_id,
            doubt.command_id,
        )
        found = Correlation(doubt.command_id, doubt.correlation_id, doubt.traceparent, doubt)
        self._calls[call_id] = found
        while len(self._calls) > self._max:
            self._calls.popitem(last=False)
        return found

    def _remember_untagged(self, call_id: str) -> None:
        # Remembered a while: a ``done`` naming one of these later is a tag missed, counted.
        # Two generations of sets: a set's add is a fraction of an OrderedDict's move.
        recent = self._untagged_recent
        recent.add(call_id)
        if len(recent) >= UNTAGGED_REMEMBERED // 2:
            self._untagged_older, self._untagged_recent = recent, set()
