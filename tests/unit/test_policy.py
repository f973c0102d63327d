"""after_failure() and before_sending(): the retry policy as a table, with no clock and no I/O."""

from datetime import UTC, datetime, timedelta

import pytest

from bridge.commands.policy import (
    Failure,
    GiveUp,
    PauseForAuth,
    Retry,
    after_failure,
    backoff,
    before_sending,
)
from bridge.contracts.commands import ResultStatus
from bridge.settings import WorkerSettings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SETTINGS = WorkerSettings(
    max_attempts=4, max_retry_seconds=60, backoff_initial=1, backoff_max=8, retry_ambiguous=True
)
STRICT = SETTINGS.model_copy(update={"retry_ambiguous": False})
DEFAULT = WorkerSettings(max_attempts=4, max_retry_seconds=60, backoff_initial=1, backoff_max=8)

RATE_LIMITED = Failure("fonestorm_rate_limited", "429", retriable=True, retry_after=5)
CONNECT = Failure("connect_failed", "refused", retriable=True)
TIMEOUT = Failure("timeout", "no answer", retriable=True)
SERVER = Failure("server_error", "503", retriable=True)
BAD_BODY = Failure("bad_response", "200 with HTML", retriable=False)
REJECTED = Failure("fonestorm_rejected", "422", retriable=False)
AUTH = Failure("fonestorm_auth", "401", retriable=False, auth=True)
HEADER = Failure("invalid_request", "newline in header", retriable=False)


def step(
    failure: Failure,
    *,
    attempts: int = 1,
    elapsed: float = 0,
    possible: bool = False,
    not_after: datetime | None = None,
    settings: WorkerSettings = SETTINGS,
):
    return after_failure(
        failure,
        attempts=attempts,
        elapsed=elapsed,
        call_possible=possible,
        now=NOW,
        not_after=not_after,
        settings=settings,
        jitter=0.0,
    )


@pytest.mark.parametrize(
    ("failure", "kwargs", "expected"),
    [
        pytest.param(CONNECT, {}, Retry(0.5), id="connect failed: retry"),
        pytest.param(RATE_LIMITED, {}, Retry(5), id="429: never sooner than Retry-After"),
        pytest.param(TIMEOUT, {}, Retry(0.5), id="timeout, retry_ambiguous: retry"),
        pytest.param(TIMEOUT, {"settings": STRICT}, ResultStatus.IN_DOUBT, id="timeout, strict"),
        pytest.param(TIMEOUT, {"settings": DEFAULT}, ResultStatus.IN_DOUBT, id="timeout, default"),
        pytest.param(SERVER, {"settings": DEFAULT}, ResultStatus.IN_DOUBT, id="5xx, default"),
        pytest.param(CONNECT, {"settings": DEFAULT}, Retry(0.5), id="connect failed, default"),
        pytest.param(RATE_LIMITED, {"settings": DEFAULT}, Retry(5), id="429, default: retry"),
        pytest.param(SERVER, {"settings": STRICT}, ResultStatus.IN_DOUBT, id="5xx, strict"),
        pytest.param(CONNECT, {"settings": STRICT}, Retry(0.5), id="connect failed, strict: retry"),
        pytest.param(
            BAD_BODY, {}, ResultStatus.IN_DOUBT, id="2xx unreadable: in doubt, never failed"
        ),
        pytest.param(REJECTED, {}, ResultStatus.FAILED, id="4xx: failed"),
        pytest.param(HEADER, {}, ResultStatus.FAILED, id="request not sendable: failed"),
        pytest.param(
            REJECTED,
            {"possible": True},
            ResultStatus.IN_DOUBT,
            id="4xx after an ambiguous attempt: in doubt",
        ),
        pytest.param(AUTH, {"possible": True}, PauseForAuth(), id="401: pause"),
        pytest.param(CONNECT, {"attempts": 4}, ResultStatus.FAILED, id="attempts exhausted"),
        pytest.param(
            TIMEOUT,
            {"attempts": 4},
            ResultStatus.IN_DOUBT,
            id="attempts exhausted after a timeout: in doubt",
        ),
        pytest.param(
            CONNECT, {"attempts": 2, "elapsed": 59.5}, ResultStatus.FAILED, id="time exhausted"
        ),
        pytest.param(
            RATE_LIMITED,
            {"not_after": NOW + timedelta(seconds=4)},
            ResultStatus.EXPIRED,
            id="not_after before the next attempt",
        ),
        pytest.param(
            RATE_LIMITED,
            {"not_after": NOW + timedelta(seconds=4), "possible": True},
            ResultStatus.IN_DOUBT,
            id="not_after, earlier attempt ambiguous",
        ),
    ],
)
def test_retry_policy_table(failure, kwargs, expected) -> None:
    result = step(failure, **kwargs)
    if isinstance(expected, ResultStatus):
        assert isinstance(result, GiveUp)
        assert result.status is expected
        assert result.dead_letter is (expected is ResultStatus.FAILED)
    else:
        assert result == expected


def test_backoff_doubles_to_the_cap_with_jitter_on_top_half() -> None:
    assert [backoff(n, SETTINGS, 0.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 4]
    assert [backoff(n, SETTINGS, 0.999) for n in (1, 5)] == pytest.approx([1, 8], rel=1e-3)


@pytest.mark.parametrize(
    ("not_after", "possible", "expected"),
    [
        (None, False, None),
        (NOW + timedelta(seconds=1), False, None),
        (NOW, False, ResultStatus.EXPIRED),
        (NOW - timedelta(seconds=1), True, ResultStatus.IN_DOUBT),
    ],
)
def test_not_after_is_checked_right_before_sending(not_after, possible, expected) -> None:
    stop = before_sending(now=NOW, not_after=not_after, call_possible=possible)
    assert (stop.status if stop else None) is expected
