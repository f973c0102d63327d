"""How often the receiver proves it has read the command ledger, and what it needs of the
follower that reads it (:class:`~bridge.kafka.follower.TopicFollower` or a test's fake)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka import AIOKafkaConsumer

from bridge.kafka.follower import Apply, TopicFollower
from bridge.settings import Settings

#: Least seconds between two ListOffsets of the ledger, however many callbacks wait for one
#: (each costs the receiver CPU): adds at most this much to their wait.
END_OFFSETS_SPACING = 0.002

#: Per round, how much of the slowest recent round is still reckoned with (a slow round weighs
#: on the next ~20).
ROUND_MEMORY = 0.95


def refresh_after(hold: float, slowest: float) -> float:
    """How old (s) the proof may grow before a round renews it, given the slowest recent round.

    The round must be proven before the proof is a hold old, or callbacks wait for one: start
    it with room for one twice as slow as ``slowest``. Never later than half a hold: a round's
    time jumps under load, and starting later left several times more callbacks waiting
    (``bench/NOTES.md``, *Correlation*).
    Never sooner than a quarter: slow rounds one after another add to the load that slows them.
    """
    return min(hold / 2, max(hold / 4, hold - 2 * slowest))


class Follower(Protocol):
    """What the correlator needs of :class:`~bridge.kafka.follower.TopicFollower`."""

    @property
    def started(self) -> bool: ...
    @property
    def proven(self) -> float: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def catch_up(self) -> None: ...
    def caught_up(self) -> Awaitable[object]: ...
    async def progress(self) -> None: ...
    def refresh(self, older_than: float) -> None: ...


#: Builds the ledger's follower that calls ``apply`` per record, ``on_batch`` after each batch
#: and ``on_round`` with how long each round took to prove, in place of a
#: :class:`~bridge.kafka.follower.TopicFollower` (a fake that says how recent its read is).
FollowerFactory = Callable[[Apply, Callable[[], None], Callable[[float], None]], Follower]


def ledger_follower(
    settings: Settings, *, consumer_factory: Callable[..., AIOKafkaConsumer] = AIOKafkaConsumer
) -> FollowerFactory:
    """The correlator's follower of the ledger: a :class:`TopicFollower` from the lookback on,
    whose consumers ``consumer_factory`` builds (a test's may hold their reads)."""

    def follow(
        apply: Apply, on_batch: Callable[[], None], on_round: Callable[[float], None]
    ) -> Follower:
        return TopicFollower(
            settings.kafka, settings.topics.command_ledger, apply, on_batch=on_batch,
            since=settings.callbacks.correlation_lookback,
            end_offsets_spacing=END_OFFSETS_SPACING, on_round=on_round,
            consumer_factory=consumer_factory,
        )  # fmt: skip

    return follow
