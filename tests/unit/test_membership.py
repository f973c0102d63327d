"""The fence: which group answers prove membership, how long a proof lasts, and a job's wait."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import pytest
from aiokafka import TopicPartition
from aiokafka.protocol.commit import OffsetCommitRequest
from aiokafka.protocol.group import (
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    SyncGroupRequest,
)
from aiokafka.structs import ConsumerRecord, RecordMetadata

from bridge.commands.jobs import Job, Revoked
from bridge.commands.membership import (
    Fence,
    Membership,
    Proof,
    Seen,
    fresh,
    lease,
    verdict,
)
from bridge.commands.outcomes import OutcomeWriter
from bridge.contracts.commands import PlaceCallCommand
from bridge.contracts.ledger import LedgerEntry, LedgerState
from bridge.errors import PublishError
from bridge.settings import Settings, WorkerSettings

HEARTBEAT = HeartbeatRequest.API_KEY
SYNC = SyncGroupRequest.API_KEY
JOIN = JoinGroupRequest.API_KEY
LEAVE = LeaveGroupRequest.API_KEY
COMMIT = OffsetCommitRequest.API_KEY
NONE, ILLEGAL_GENERATION, UNKNOWN_MEMBER, REBALANCING, NOT_COORDINATOR = 0, 22, 25, 27, 16


@pytest.mark.parametrize(
    ("api_key", "error_code", "seen"),
    [
        (HEARTBEAT, NONE, Seen.PROOF),
        (SYNC, NONE, Seen.PROOF),
        # aiokafka's _do_heartbeat counts this as success; the group may already be moving on.
        (HEARTBEAT, REBALANCING, Seen.NOTHING),
        (SYNC, REBALANCING, Seen.NOTHING),
        (HEARTBEAT, NOT_COORDINATOR, Seen.NOTHING),
        (HEARTBEAT, UNKNOWN_MEMBER, Seen.VOID),
        (HEARTBEAT, ILLEGAL_GENERATION, Seen.VOID),
        (SYNC, UNKNOWN_MEMBER, Seen.VOID),
        # Accepted while a rebalance is in progress: proves nothing about it.
        (COMMIT, NONE, Seen.NOTHING),
        # An assignment follows in SyncGroup; nothing is owned before it.
        (JOIN, NONE, Seen.NOTHING),
        # Leaving, aiokafka does not revoke first (max_poll_interval passed): void at once.
        (LEAVE, None, Seen.VOID),
        (LEAVE, NONE, Seen.NOTHING),
        (HEARTBEAT, None, Seen.NOTHING),
    ],
)
def test_what_a_group_request_says(api_key: int, error_code: int | None, seen: Seen) -> None:
    assert verdict(api_key, error_code) is seen


PROOF = Proof(generation=7, member_id="m-1", sent_at=100.0)


@pytest.mark.parametrize(
    ("proof", "generation", "member_id", "now", "expected"),
    [
        (PROOF, 7, "m-1", 100.0, True),
        (PROOF, 7, "m-1", 107.9, True),
        # Another member may own the partition from sent_at + lease on.
        (PROOF, 7, "m-1", 108.0, False),
        (PROOF, 7, "m-1", 500.0, False),
        # The generation that assigned the partition, not any other.
        (PROOF, 8, "m-1", 101.0, False),
        (PROOF, 6, "m-1", 101.0, False),
        # The member we were, not one we became after rejoining.
        (PROOF, 7, "m-2", 101.0, False),
        (None, 7, "m-1", 101.0, False),
    ],
)
def test_a_proof_lasts_its_lease_for_its_generation_and_member(
    proof: Proof | None, generation: int, member_id: str, now: float, expected: bool
) -> None:
    assert fresh(proof, generation=generation, member_id=member_id, now=now, lease=8.0) is expected


@pytest.mark.parametrize(
    ("session", "rebalance", "margin", "expected"),
    [(10.0, 60.0, 2.0, 8.0), (10.0, 6.0, 1.0, 5.0), (6.0, 60.0, 0.0, 6.0)],
)
def test_the_lease_is_the_lesser_timeout_less_the_margin(
    session: float, rebalance: float, margin: float, expected: float
) -> None:
    assert lease(session_timeout=session, rebalance_timeout=rebalance, margin=margin) == expected


@pytest.mark.parametrize(
    ("worker", "valid"),
    [
        ({}, True),
        ({"session_timeout": 6, "fence_margin": 3}, True),
        ({"session_timeout": 6, "fence_margin": 3.5}, False),
        ({"session_timeout": 30, "rebalance_timeout": 10, "fence_margin": 6}, False),
    ],
)
def test_the_margin_leaves_room_for_heartbeats(worker: dict[str, float], valid: bool) -> None:
    if valid:
        WorkerSettings.model_validate(worker)
    else:
        with pytest.raises(ValueError, match="BRIDGE_WORKER__FENCE_MARGIN"):
            WorkerSettings.model_validate(worker)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def _membership(clock: Clock) -> Membership:
    return Membership(
        WorkerSettings(session_timeout=10, rebalance_timeout=60, fence_margin=2), clock=clock
    )


def test_proofs_are_kept_newest_first_and_voided_by_leaving() -> None:
    clock = Clock()
    membership = _membership(clock)
    membership.observe(HEARTBEAT, NONE, Proof(3, "m", 1000.0))
    membership.observe(HEARTBEAT, NONE, Proof(3, "m", 999.0))  # a slower, older answer
    assert membership.proof == Proof(3, "m", 1000.0)
    membership.observe(HEARTBEAT, REBALANCING, Proof(3, "m", 1001.0))
    assert membership.proof == Proof(3, "m", 1000.0)
    clock.now = 1007.9
    assert membership.proven(3, "m")
    clock.now = 1008.0
    assert not membership.proven(3, "m")
    membership.observe(HEARTBEAT, NONE, Proof(3, "m", 1003.0))
    assert membership.proven(3, "m")
    membership.void(1004.0)  # LeaveGroup sent
    assert membership.proof is None
    # A heartbeat sent before the LeaveGroup and answered after it proves nothing.
    membership.observe(HEARTBEAT, NONE, Proof(3, "m", 1003.5))
    assert membership.proof is None
    membership.observe(SYNC, NONE, Proof(4, "n", 1005.0))
    assert membership.proven(4, "n")
    membership.observe(HEARTBEAT, UNKNOWN_MEMBER, Proof(4, "n", 1006.0))
    assert not membership.proven(4, "n")


def test_an_unattached_membership_proves_nothing() -> None:
    fence = _membership(Clock()).fence()
    assert not fence.proven()


@dataclass
class FakeFence:
    """A fence whose proof the test turns on and off."""

    proofs: list[bool]
    patience: float = 60.0
    waits: list[float] = field(default_factory=list)

    def proven(self) -> bool:
        return self.proofs[0]

    def now(self) -> float:
        return time.monotonic()

    async def next_proof(self, timeout: float) -> None:
        self.waits.append(timeout)
        if len(self.proofs) > 1:
            self.proofs.pop(0)
        await asyncio.sleep(0)


RECORD: ConsumerRecord[bytes, bytes] = ConsumerRecord(
    topic="commands", partition=0, offset=0, timestamp=0, timestamp_type=0, key=b"k",
    value=b"v", checksum=None, serialized_key_size=1, serialized_value_size=1, headers=[],
)  # fmt: skip


def _job(fence: FakeFence, owned: list[bool]) -> Job:
    # The fake has Fence's interface: proven(), now(), patience, next_proof().
    fake: Fence = fence  # type: ignore[assignment]
    return Job(RECORD, still_owned=lambda: owned[0], fence=fake)


async def test_a_proven_owned_job_goes_ahead_at_once() -> None:
    fence = FakeFence([True])
    await _job(fence, [True]).fenced()
    assert fence.waits == []


async def test_a_stale_proof_waits_for_the_next_one() -> None:
    fence = FakeFence([False, False, True])
    await _job(fence, [True]).fenced()
    assert len(fence.waits) == 2


async def test_a_revoked_partition_is_revoked_whatever_the_proof() -> None:
    with pytest.raises(Revoked):
        await _job(FakeFence([True]), [False]).fenced()


async def test_revoked_while_waiting_for_a_proof() -> None:
    owned = [True]
    fence = FakeFence([False])

    async def revoke_later() -> None:
        await asyncio.sleep(0)
        owned[0] = False

    revoking = asyncio.create_task(revoke_later())
    with pytest.raises(Revoked):
        await _job(fence, owned).fenced()
    await revoking


async def test_no_proof_within_the_patience_gives_the_command_up() -> None:
    fence = FakeFence([False], patience=0.0)
    with pytest.raises(Revoked):
        await _job(fence, [True]).fenced()


def test_pending_needs_only_the_proof() -> None:
    assert _job(FakeFence([True]), [False]).proven()
    assert not _job(FakeFence([False]), [True]).proven()


class FlakyLedger:
    """Fails the first write as an unreachable Kafka does; records what got through."""

    def __init__(self) -> None:
        self.attempts = 0
        self.written: list[str] = []

    async def record(self, entry: LedgerEntry) -> RecordMetadata:
        self.attempts += 1
        if self.attempts == 1:
            raise PublishError("no broker")
        self.written.append(entry.state.value)
        offset = len(self.written) - 1
        return RecordMetadata("ledger", 0, TopicPartition("ledger", 0), offset, -1, 0, 0)


@pytest.mark.parametrize(
    ("state", "proofs", "owned", "written"),
    [
        (LedgerState.PLACING, [True], [True], ["placing"]),
        (LedgerState.PLACING, [False], [False], []),  # revoked and stale by the retry
        (LedgerState.PENDING, [True], [False], ["pending"]),  # handing over: proof is enough
        (LedgerState.PENDING, [False], [True], []),
    ],
)
async def test_a_retried_ledger_write_checks_the_fence_again(
    state: LedgerState,
    proofs: list[bool],
    owned: list[bool],
    written: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bridge.retrying.backoff_delays", lambda *_: itertools.repeat(0.0))
    ledger = FlakyLedger()
    out = OutcomeWriter(Settings(), None, ledger, None)  # type: ignore[arg-type]
    cmd = PlaceCallCommand.model_validate(
        {"command_id": "c-1", "fonenumber": "3215551081", "to": "3215551801"}
    )
    job = _job(FakeFence(proofs), owned)
    if written:
        await out.state(job, cmd, state)
    else:
        with pytest.raises(Revoked):
            await out.state(job, cmd, state)
    assert ledger.written == written
