"""What to do after a create-call attempt failed: a pure retry policy, tested as a table.

The one question that matters is whether the call may exist. An answer that proves it does
not (a refusal, a rate limit, a connection never made) leaves the command free to be tried
again, here or by the partition's next owner. An answer that leaves it open (a timeout after
sending, a lost connection, a 5xx, a 2xx we cannot read) is retried only where the operator
allows it (``BRIDGE_WORKER__RETRY_AMBIGUOUS``); otherwise, and whenever the command can no
longer be retried, it ends ``in_doubt``: never ``failed``, which would claim no call exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.contracts.commands import ResultStatus
from bridge.settings import WorkerSettings

#: Error codes of FoneStorm answers after which the call may exist.
AMBIGUOUS_CODES = frozenset({"timeout", "connection_error", "server_error", "bad_response"})
#: Of those, the ones no retry can resolve: a 2xx accepted the request, the call may ring.
NEVER_RETRIED = frozenset({"bad_response"})


@dataclass(frozen=True)
class Failure:
    """A failed create-call attempt, as the policy needs to see it."""

    code: str
    message: str
    retriable: bool
    auth: bool = False
    retry_after: float | None = None

    @property
    def call_possible(self) -> bool:
        """Whether FoneStorm may have created the call in this attempt."""
        return self.code in AMBIGUOUS_CODES


@dataclass(frozen=True)
class Retry:
    """Try again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True)
class PauseForAuth:
    """FoneStorm refused the token: pause consumption, probe again later."""


@dataclass(frozen=True)
class GiveUp:
    """End the command with ``status``; ``dead_letter`` keeps the command for an operator."""

    status: ResultStatus
    code: str
    message: str
    dead_letter: bool = False


Next = Retry | PauseForAuth | GiveUp


def backoff(attempts: int, settings: WorkerSettings, jitter: float) -> float:
    """Exponential backoff with jitter (``jitter`` in [0, 1)): half fixed, half random."""
    ceiling = min(settings.backoff_max, settings.backoff_initial * 2.0 ** (attempts - 1))
    return ceiling / 2 + jitter * ceiling / 2


def after_failure(
    failure: Failure,
    *,
    attempts: int,
    elapsed: float,
    call_possible: bool,
    now: datetime,
    not_after: datetime | None,
    settings: WorkerSettings,
    jitter: float,
) -> Next:
    """The next step after ``attempts`` attempts, the last one ``failure``.

    ``call_possible`` is true when an earlier attempt may have created the call.
    """
    if failure.auth:
        return PauseForAuth()
    possible = call_possible or failure.call_possible
    final = _not_retriable(failure, possible, settings)
    if final is not None:
        return final
    delay = backoff(attempts, settings, jitter)
    if failure.retry_after is not None:
        delay = max(delay, failure.retry_after)
    return _out_of_time(
        failure, possible, delay, attempts=attempts, elapsed=elapsed, now=now,
        not_after=not_after, settings=settings,
    ) or Retry(delay)  # fmt: skip


def _out_of_time(
    failure: Failure,
    possible: bool,
    delay: float,
    *,
    attempts: int,
    elapsed: float,
    now: datetime,
    not_after: datetime | None,
    settings: WorkerSettings,
) -> GiveUp | None:
    """The end of a command that may not wait ``delay`` more: attempts, time or not_after."""
    last = f"{failure.code}: {failure.message}"
    if attempts >= settings.max_attempts or elapsed + delay > settings.max_retry_seconds:
        if possible:
            return _in_doubt(f"retries exhausted and an attempt may have created the call "
                             f"(last: {last})")  # fmt: skip
        return GiveUp(ResultStatus.FAILED, failure.code, f"retries exhausted: {failure.message}",
                      dead_letter=True)  # fmt: skip
    if not_after is not None and now + timedelta(seconds=delay) >= not_after:
        why = f"not_after {not_after.isoformat()} comes before the next attempt"
        if possible:
            return _in_doubt(f"{why}, and an earlier attempt may have created the call")
        return GiveUp(ResultStatus.EXPIRED, "expired", f"{why} (last: {last})")
    return None


def _not_retriable(failure: Failure, possible: bool, settings: WorkerSettings) -> GiveUp | None:
    """The answers no retry may follow, whatever the attempts and time left."""
    if failure.code in NEVER_RETRIED:
        return _in_doubt(f"FoneStorm accepted the request but its answer is unreadable "
                         f"({failure.message})")  # fmt: skip
    if failure.call_possible and not settings.retry_ambiguous:
        return _in_doubt(
            f"FoneStorm may have created the call ({failure.code}: {failure.message}); not "
            "retried (BRIDGE_WORKER__RETRY_AMBIGUOUS=false)"
        )
    if not failure.retriable:
        # A definite refusal (4xx): this attempt created no call.
        if possible:
            return _in_doubt(f"an earlier attempt may have created the call; then: "
                             f"{failure.message}")  # fmt: skip
        return GiveUp(ResultStatus.FAILED, failure.code, f"permanent error: {failure.message}",
                      dead_letter=True)  # fmt: skip
    return None


def before_sending(
    *, now: datetime, not_after: datetime | None, call_possible: bool
) -> GiveUp | None:
    """Checked right before each request: a call must not start after ``not_after``."""
    if not_after is None or now < not_after:
        return None
    if call_possible:
        return _in_doubt(f"not_after {not_after.isoformat()} passed while retrying, and an "
                         "earlier attempt may have created the call")  # fmt: skip
    return GiveUp(ResultStatus.EXPIRED, "expired", f"not_after {not_after.isoformat()} has passed")


def _in_doubt(message: str) -> GiveUp:
    return GiveUp(ResultStatus.IN_DOUBT, "in_doubt", message)
