"""A command record in the worker's hands: where it stands, for the worker to act on revoke."""

from __future__ import annotations

import enum
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from bridge.commands import records
from bridge.commands.ledger import NOWHERE, Watch
from bridge.commands.membership import Fence
from bridge.commands.records import Record, source_of
from bridge.contracts.base import utcnow

log = logging.getLogger(__name__)

#: Seconds between looks at the partition's ownership while waiting for a proof of membership.
RECHECK_INTERVAL = 0.5


class Revoked(Exception):
    """The command's partition was given up before a request went out; its next owner has it."""


class Phase(enum.Enum):
    """Where a job stands, for the worker to choose on revoke: cancel it, or let it finish."""

    WAITING = "waiting"  # deciding, in the rate limiter, backing off, paused: no request out
    MARKING = "marking"  # writing ``placing``; no request out yet
    SENT = "sent"  # a create-call request is out: let it answer
    RECORDING = "recording"  # the outcome is known: let it be written


class Job:
    """One command record being handled, and what the worker may do with it."""

    __slots__ = (
        "accepted",
        "call_possible",
        "fence",
        "last_write",
        "lost_to",
        "phase",
        "placing",
        "received_at",
        "record",
        "source",
        "started",
        "still_owned",
        "watch",
        "writer",
    )

    def __init__(self, record: Record, still_owned: Callable[[], bool], fence: Fence) -> None:
        self.record = record
        self.still_owned = still_owned
        self.fence = fence
        self.received_at = utcnow()
        self.started = time.perf_counter()
        self.source = source_of(record.topic, record.partition, record.offset)
        self.phase = Phase.WAITING
        #: The ledger's latest entry for this command (from this job) is ``placing``.
        self.placing = False
        #: An attempt of this job may have created the call: never write ``pending`` again.
        self.call_possible = False
        #: Names this job's ledger entries (see :mod:`bridge.commands.claim`).
        self.writer = uuid.uuid4().hex
        #: The command's ledger records read while this job runs, and the position up to which
        #: none of them is another writer's (the job has read the ledger up to there).
        self.watch = Watch("")
        self.accepted = NOWHERE
        #: Where this job's latest acknowledged ledger write is.
        self.last_write = NOWHERE
        #: After a lost claim: the writers it lost to, when every one of them is known.
        self.lost_to: frozenset[str] = frozenset()

    async def fenced(self) -> None:
        """Return once this worker may act as the partition's owner; else raise :class:`Revoked`.

        Acting means writing ``placing`` or sending the request: the partition must still be
        owned and the group membership that assigned it proven current
        (:mod:`bridge.commands.membership`). While the proof is stale and the partition still
        looks owned this waits, for at most the fence's patience, for aiokafka's next heartbeat
        to prove it again or for the revocation.
        """
        waiting_since: float | None = None
        while True:
            if not self.still_owned():
                raise Revoked
            if self.fence.proven():
                if waiting_since is not None:
                    log.info(
                        "group membership proven again after %.1fs", self._since(waiting_since)
                    )
                return
            if waiting_since is None:
                waiting_since = self.fence.now()
                log.warning("group membership not proven; waiting before writing or sending")
            left = self.fence.patience - self._since(waiting_since)
            if left <= 0:
                log.error(
                    "group membership not proven for %.0fs; leaving the command to the "
                    "partition's next owner",
                    self.fence.patience,
                )
                raise Revoked
            # Never less than a millisecond: a wait shorter than the clock's resolution would
            # come back at once, at the same time, for ever.
            await self.fence.next_proof(max(min(left, RECHECK_INTERVAL), 0.001))

    def proven(self) -> bool:
        """The group has not yet given the partition to anyone else, owned here or not.

        What a ``pending`` written while giving the partition up needs.
        """
        return self.fence.proven()

    def _since(self, moment: float) -> float:
        return self.fence.now() - moment

    @property
    def must_finish(self) -> bool:
        """A request is out or answered: cancelling now could lose a call's result."""
        return self.phase in (Phase.SENT, Phase.RECORDING)

    @property
    def written_at(self) -> datetime | None:
        """When the command record was written (its Kafka timestamp), if it has one."""
        return records.written_at(self.record)
