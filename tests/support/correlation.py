"""A ``CallCorrelator`` over a fake follower of the ledger, and ledger records to apply to it.

The fake says how recent its read of the ledger is (``age``, on a stopped clock), applies the
records a test hands it, and lets the test decide when a waiting callback sees the next batch.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka.structs import ConsumerRecord

from bridge.contracts.base import utcnow
from bridge.contracts.commands import PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState
from bridge.ingest.correlation import CallCorrelator
from bridge.ingest.ledger_rounds import Apply
from bridge.obs.metrics import Metrics
from bridge.settings import Settings

OURS, THEIRS, OTHER = "+13215551081", "+13215551801", "+14075550100"
PAIR = (OURS, THEIRS)
#: The correlator's monotonic clock, stopped: ages are exact.
NOW = 1000.0


class FakeFollower:
    """Read the ledger as of ``age`` seconds before :data:`NOW` (None: never)."""

    started = True

    def __init__(
        self, apply: Apply, on_round: Callable[[float], None], age: float | None, failure: Any
    ) -> None:
        #: Applies one ledger record, as the real follower does per record read.
        self.apply = apply
        #: Reports a round proven in so many seconds, as the real follower does.
        self.round_proven = on_round
        self.age = age
        self.failure = failure
        #: The ``older_than`` of every refresh asked for.
        self.refreshed: list[float] = []
        self._batch = asyncio.Event()

    @property
    def proven(self) -> float:
        return -math.inf if self.age is None else NOW - self.age

    def refresh(self, older_than: float) -> None:
        self.refreshed.append(older_than)

    def caught_up(self) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failure is None:
            done.set_result(None)
        else:
            done.set_exception(self.failure)
        return done

    async def progress(self) -> None:
        await self._batch.wait()

    def batch(self) -> None:
        """A batch has been applied: waiters look again."""
        self._batch.set()
        self._batch = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def catch_up(self) -> None:
        pass


@dataclass
class Correlating:
    """A correlator, the fake follower it reads the ledger through, and its metrics."""

    correlator: CallCorrelator
    follower: FakeFollower
    settings: Settings
    metrics: Metrics = field(repr=False)

    def apply(self, *records: ConsumerRecord[bytes, bytes]) -> None:
        """The follower reads ``records``."""
        for record in records:
            self.follower.apply(record)

    def metrics_text(self) -> str:
        return self.metrics.render().decode()


def correlating(
    callbacks: dict[str, Any], *records: Any, age: float | None, failure: Any = None
) -> Correlating:
    """A correlator with these ``callbacks`` settings that has read ``records``."""
    settings = Settings(callbacks={"allow_unauthenticated": True, **callbacks})
    metrics = Metrics()
    followers: list[FakeFollower] = []

    def follow(apply: Apply, on_batch: object, on_round: Callable[[float], None]) -> FakeFollower:
        followers.append(FakeFollower(apply, on_round, age, failure))
        return followers[-1]

    correlator = CallCorrelator(settings, metrics, follow=follow, monotonic=lambda: NOW)
    made = Correlating(correlator, followers[0], settings, metrics)
    made.apply(*records)
    return made


def ledger_record(
    command_id: str,
    state: LedgerState | None,
    *,
    status: ResultStatus | None = None,
    call_id: str | None = None,
    pair: tuple[str, str] = PAIR,
    age: float = 0.0,
    reported: datetime | None = None,
) -> ConsumerRecord[bytes, bytes]:
    """A ledger record written ``age`` seconds ago (``state`` None: a tombstone); its result,
    if ``status`` is given, was received and finished at ``reported`` (now by default)."""
    result = None
    if status is not None:
        at = utcnow() if reported is None else reported
        result = PlaceCallResult(
            command_id=command_id, status=status, call_id=call_id,
            correlation_id=f"corr-{command_id}", attempts=1, received_at=at, finished_at=at,
        )  # fmt: skip
    value = None
    if state is not None:
        value = LedgerEntry(
            command_id=command_id, state=state, source="t/0/0", result=result,
            updated_at=utcnow(), fonenumber=pair[0], to=pair[1],
        ).model_dump_json().encode()  # fmt: skip
    return ConsumerRecord(
        topic="ledger", partition=0, offset=0, timestamp=int((time.time() - age) * 1000),
        timestamp_type=0, key=command_id.encode(), value=value, checksum=None,
        serialized_key_size=0, serialized_value_size=len(value or b""), headers=[],
    )  # fmt: skip
