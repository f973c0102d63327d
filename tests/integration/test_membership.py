"""The seam into aiokafka that proves the worker's group membership, against the real broker.

``Membership.attach`` wraps the group coordinator's ``_send_req`` (aiokafka has no API for the
answers to its heartbeats). If aiokafka stops sending group requests through it, or changes
how it heartbeats during a rebalance, these tests fail: a heartbeat answered NoError proves the
membership; the heartbeats answered REBALANCE_IN_PROGRESS while the member revokes (aiokafka's
``_do_heartbeat`` counts them as success) do not; SyncGroup proves the new generation; leaving
the group voids the proof.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.protocol.group import HeartbeatRequest

from bridge.commands.membership import Fence, Membership
from bridge.settings import WorkerSettings
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SESSION_TIMEOUT = 6.0
HEARTBEAT_INTERVAL = 0.5
REBALANCING = 27


class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Fences per assignment, as the worker takes them; revocations held until released."""

    def __init__(self, membership: Membership) -> None:
        self.membership = membership
        self.fences: list[Fence] = []
        self.revoking = asyncio.Event()
        self.release = asyncio.Event()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            self.revoking.set()
            await self.release.wait()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.fences.append(self.membership.fence())


def _consumer(bootstrap: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=int(SESSION_TIMEOUT * 1000),
        heartbeat_interval_ms=int(HEARTBEAT_INTERVAL * 1000),
        rebalance_timeout_ms=30000,
    )


@contextlib.asynccontextmanager
async def _polling(consumer: AIOKafkaConsumer) -> AsyncIterator[None]:
    """Poll in the background, as the worker does, so the member stays active."""

    async def poll() -> None:
        while True:
            await consumer.getmany(timeout_ms=100)

    task = asyncio.create_task(poll())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _count_heartbeat_answers(consumer: AIOKafkaConsumer) -> Counter[int]:
    """Heartbeat answers by error code, counted around the membership's own observation."""
    answers: Counter[int] = Counter()
    coordinator: Any = consumer._coordinator
    send = coordinator._send_req

    async def counted(request: Any) -> Any:
        response = await send(request)
        if request.API_KEY == HeartbeatRequest.API_KEY:
            answers[response.error_code] += 1
        return response

    coordinator._send_req = counted
    return answers


async def test_heartbeats_prove_membership_and_rebalancing_ones_do_not(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]]
) -> None:
    topic = await new_topic(prefix="fence", partitions=2)
    group = f"fence-{uuid.uuid4()}"
    membership = Membership(
        WorkerSettings(session_timeout=SESSION_TIMEOUT, rebalance_timeout=30, fence_margin=2)
    )
    listener = Listener(membership)
    first = _consumer(kafka_bootstrap, group)
    second = _consumer(kafka_bootstrap, group)
    await first.start()
    try:
        membership.attach(first)
        answers = _count_heartbeat_answers(first)
        first.subscribe([topic], listener=listener)
        async with _polling(first):
            await eventually(lambda: bool(listener.fences), "the first assignment")
            fence = listener.fences[0]
            assert fence.generation > 0
            # SyncGroup proved it; each heartbeat answered NoError proves it again.
            await eventually(fence.proven, "a proof of the first generation")
            proof = membership.proof
            assert proof is not None
            await eventually(lambda: answers[0] >= 2, "heartbeats answered")
            renewed = membership.proof
            assert renewed is not None
            assert renewed.sent_at > proof.sent_at
            assert fence.proven()

            # A second member joins: the group rebalances and holds on while we revoke.
            await second.start()
            second.subscribe([topic])
            async with _polling(second):
                await eventually(listener.revoking.is_set, "the revocation")
                before = membership.proof
                rebalancing = answers[REBALANCING]
                await eventually(
                    lambda: answers[REBALANCING] >= rebalancing + 2,
                    "heartbeats answered REBALANCE_IN_PROGRESS during the revocation",
                )
                assert membership.proof == before, "a rebalancing heartbeat was taken as proof"
                # Nothing renews it: the proof runs out while the partitions are not revoked.
                await eventually(lambda: not fence.proven(), "the proof to run out")

                listener.release.set()
                await eventually(lambda: len(listener.fences) == 2, "the second assignment")
                renewed_fence = listener.fences[1]
                assert renewed_fence.generation > fence.generation
                await eventually(renewed_fence.proven, "a proof of the second generation")
                assert not fence.proven(), "a proof of one generation proves another"
            await second.stop()
    finally:
        listener.release.set()
        await first.stop()  # LeaveGroup
    assert membership.proof is None, "still proven after leaving the group"
    assert not listener.fences[-1].proven()
