"""Proof that this worker is still a current member of its consumer group: the fence.

Partition ownership is local (:mod:`bridge.commands.ownership`). A worker paused past its
session (GC, SIGSTOP, a VM pause, a network cut to the group coordinator only) still believes it
owns its partitions when it resumes, while the group has given them to another member. So before
a ``placing`` or ``pending`` ledger write and before a create-call request, the worker needs
proof that no other member can own the partition yet.

**The proof**: a Heartbeat or SyncGroup request *sent* at ``t`` (monotonic clock) in generation
``G`` as member ``M``, answered without error. The coordinator handled it at or after ``t``
with ``M`` in generation ``G`` and the group not rebalancing (a group preparing a rebalance
answers REBALANCE_IN_PROGRESS, a later generation ILLEGAL_GENERATION), and restarted ``M``'s
session timer. A generation has one assignment (aiokafka's eager protocol), ours in ``G``;
another member gets the partition only in a later generation, which can complete without us only

* once we rejoin, which aiokafka does after revoking (``on_partitions_revoked``): the worker
  drops the partition then, and its jobs see it;
* once our session expired: at or after ``t + session_timeout``;
* once a rebalance that started after ``t`` timed out waiting for us: at or after
  ``t + rebalance_timeout`` (the group waits for the largest rebalance timeout of its members).

So until ``t + min(session_timeout, rebalance_timeout)`` the partition is nobody else's. A check
passes until then less ``BRIDGE_WORKER__FENCE_MARGIN``: what is checked must still reach Kafka
(a produce, usually milliseconds) before the next owner can read the ledger. A write slower
than the margin from its check to the broker is the risk that remains; only the broker could
fence it (transactions).

**Not proof**: OffsetCommit (accepted while the group is preparing a rebalance); JoinGroup (a
SyncGroup follows before any assignment); aiokafka's own heartbeat bookkeeping, which counts
REBALANCE_IN_PROGRESS as success (``_do_heartbeat`` returns True for it, to stay alive through a
rebalance). A LeaveGroup voids every earlier proof: aiokafka sends one without revoking first
when ``max_poll_interval`` passes, and on close. So does an answer that we are not a member
(UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID), though time has voided it by then.

**The seam**: aiokafka has no API for any of this. :meth:`Membership.attach` wraps the group
coordinator's ``_send_req`` on the consumer's own instance (aiokafka 0.14, pinned in
requirements.lock), through which aiokafka sends every group request, and reads the
coordinator's public ``generation`` and ``member_id`` as the request goes out.
``tests/integration/test_membership.py`` fails if that stops observing heartbeats.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.protocol.group import HeartbeatRequest, LeaveGroupRequest, SyncGroupRequest

from bridge.settings import WorkerSettings

log = logging.getLogger(__name__)

NO_ERROR = 0
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
FENCED_INSTANCE_ID = 82
#: Answers saying we are not the member we were: no earlier proof counts.
NOT_A_MEMBER = frozenset({ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID})
#: Requests whose error-free answer proves the membership (see the module docstring).
PROVING = frozenset({HeartbeatRequest.API_KEY, SyncGroupRequest.API_KEY})


class Seen(enum.Enum):
    """What one group request tells about our membership."""

    PROOF = "proof"  # a member of the stable group in the request's generation, as of its send
    VOID = "void"  # not (or no longer) a member: no proof sent before counts
    NOTHING = "nothing"


def verdict(api_key: int, error_code: int | None) -> Seen:
    """What a group request says: answered with ``error_code``, or about to go out (``None``)."""
    if error_code is None:
        return Seen.VOID if api_key == LeaveGroupRequest.API_KEY else Seen.NOTHING
    if api_key not in PROVING:
        return Seen.NOTHING
    if error_code == NO_ERROR:
        return Seen.PROOF
    return Seen.VOID if error_code in NOT_A_MEMBER else Seen.NOTHING


@dataclass(frozen=True)
class Proof:
    """A request answered as a member of the stable group, and when it was sent."""

    generation: int
    member_id: str
    sent_at: float


def lease(*, session_timeout: float, rebalance_timeout: float, margin: float) -> float:
    """Seconds after a proof's request was sent during which it proves the membership."""
    return min(session_timeout, rebalance_timeout) - margin


def fresh(
    proof: Proof | None, *, generation: int, member_id: str, now: float, lease: float
) -> bool:
    """Whether ``proof`` shows membership in ``generation`` as ``member_id`` at ``now``."""
    return (
        proof is not None
        and proof.generation == generation
        and proof.member_id == member_id
        and now < proof.sent_at + lease
    )


class Membership:
    """The latest proof of membership, observed on the consumer's group requests."""

    def __init__(
        self, settings: WorkerSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lease = lease(
            session_timeout=settings.session_timeout,
            rebalance_timeout=settings.rebalance_timeout,
            margin=settings.fence_margin,
        )
        #: Longest a job waits for a proof while its partition still looks owned. By then the
        #: group has either heard from us or stopped waiting for us.
        self.patience = settings.rebalance_timeout
        self._clock = clock
        self._coordinator: Any = None
        self._proof: Proof | None = None
        self._void_before = -math.inf
        self._proved = asyncio.Event()

    def attach(self, consumer: AIOKafkaConsumer) -> None:
        """Observe the group requests of ``consumer`` (started, not yet subscribed)."""
        coordinator: Any = getattr(consumer, "_coordinator", None)
        send = getattr(coordinator, "_send_req", None)
        if send is None or not hasattr(coordinator, "generation"):
            raise RuntimeError(
                "aiokafka's group coordinator has no _send_req/generation: the worker cannot "
                "prove its group membership (see bridge.commands.membership)"
            )
        coordinator._send_req = self._observing(send, coordinator)
        self._coordinator = coordinator

    def _observing(
        self, send: Callable[[Any], Awaitable[Any]], coordinator: Any
    ) -> Callable[[Any], Awaitable[Any]]:
        async def observed(request: Any) -> Any:
            api_key = request.API_KEY
            # aiokafka builds the request from these and sends it without an await between.
            generation, member_id = coordinator.generation, coordinator.member_id
            sent_at = self._clock()
            if verdict(api_key, None) is Seen.VOID:
                self.void(sent_at)
            response = await send(request)
            self.observe(
                api_key,
                getattr(response, "error_code", None),
                Proof(generation, member_id, sent_at),
            )
            return response

        return observed

    def observe(self, api_key: int, error_code: int | None, proof: Proof) -> None:
        """An answer to the group request sent as ``proof`` says."""
        seen = verdict(api_key, error_code)
        if seen is Seen.VOID:
            self.void(proof.sent_at)
        elif seen is Seen.PROOF and self._newest(proof):
            self._proof = proof
            self._proved.set()
            self._proved = asyncio.Event()

    def _newest(self, proof: Proof) -> bool:
        if proof.sent_at <= self._void_before:
            return False
        return self._proof is None or proof.sent_at >= self._proof.sent_at

    def void(self, since: float) -> None:
        """No proof sent at or before ``since`` counts any more."""
        self._void_before = max(self._void_before, since)
        if self._proof is not None and self._proof.sent_at <= since:
            self._proof = None

    def now(self) -> float:
        """The clock proofs are timed by (monotonic seconds)."""
        return self._clock()

    @property
    def proof(self) -> Proof | None:
        """The latest proof, if any."""
        return self._proof

    def fence(self) -> Fence:
        """The fence of the current generation: call when partitions are assigned."""
        coordinator = self._coordinator
        if coordinator is None:
            return Fence(self, -1, "")  # never proven: not attached
        return Fence(self, coordinator.generation, coordinator.member_id)

    def proven(self, generation: int, member_id: str) -> bool:
        """Membership in ``generation`` as ``member_id`` is proven now."""
        return fresh(
            self._proof,
            generation=generation,
            member_id=member_id,
            now=self._clock(),
            lease=self.lease,
        )

    async def next_proof(self, timeout: float) -> None:  # noqa: ASYNC109
        """Until a new proof is observed, or ``timeout`` seconds."""
        proved = self._proved
        try:
            async with asyncio.timeout(timeout):
                await proved.wait()
        except TimeoutError:
            pass


@dataclass(frozen=True)
class Fence:
    """Membership in the generation that assigned a partition: what its jobs check."""

    membership: Membership
    generation: int
    member_id: str

    def proven(self) -> bool:
        """No other member can own the partitions of this generation yet (see module doc)."""
        return self.membership.proven(self.generation, self.member_id)

    def now(self) -> float:
        """The membership's clock (monotonic seconds)."""
        return self.membership.now()

    @property
    def patience(self) -> float:
        """Longest wait for a proof while the partition still looks owned (s)."""
        return self.membership.patience

    async def next_proof(self, timeout: float) -> None:  # noqa: ASYNC109
        """Until a new proof is observed, or ``timeout`` seconds."""
        await self.membership.next_proof(timeout)
