"""The fence: which group answers prove membership, how long a proof lasts, and a job's wait."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiokafka.protocol.commit import OffsetCommitRequest
from aiokafka.protocol.group import (
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    SyncGroupRequest,
)

from bridge.commands.membership import (
    Membership,
    Proof,
    Seen,
    fresh,
    lease,
    verdict,
)
from bridge.settings import WorkerSettings

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
