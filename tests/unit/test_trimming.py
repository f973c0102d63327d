"""trimmed(): a result Kafka refused, cut down to be published all the same, as a table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.commands.trimming import ELLIPSIS, TRIM_LIMITS, trimmed
from bridge.contracts.commands import PlaceCallResult, ResultStatus, parse_command
from bridge.errors import InvalidCommand

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LIMIT = 10


def result(**fields: Any) -> PlaceCallResult:
    data: dict[str, Any] = {
        "command_id": "c1",
        "status": ResultStatus.REJECTED,
        "error_code": "bad_id",
        "error_message": "bad",
        "received_at": NOW,
        "finished_at": NOW,
    }
    return PlaceCallResult(**(data | fields))


NOTE = f"[result cut to fit Kafka's record size limit, to {LIMIT} characters a field: "


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        pytest.param(result(), None, id="nothing that long: nothing to cut"),
        pytest.param(result(command_id="x" * LIMIT), None, id="exactly the limit: kept"),
        pytest.param(
            result(command_id="x" * 30),
            {
                "command_id": "x" * LIMIT + ELLIPSIS,
                "error_message": f"bad {NOTE}command_id (30 characters)]",
            },
            id="a long command_id",
        ),
        pytest.param(
            result(error_message="e" * 12, correlation_id="r" * 11),
            {
                "error_message": "e" * LIMIT
                + ELLIPSIS
                + f" {NOTE}error_message (12 characters), correlation_id (11 characters)]",
                "correlation_id": "r" * LIMIT + ELLIPSIS,
            },
            id="a long message and correlation id",
        ),
        pytest.param(
            result(error_message=None, metadata={"a": "1234", "bb": "123456789", "c": "1"}),
            {
                "metadata": {"a": "1234", "c": "1"},
                "error_message": f"{NOTE}metadata (1 entries dropped)]",
            },
            id="metadata over the limit: what does not fit dropped",
        ),
        pytest.param(
            result(
                status=ResultStatus.PLACED, call_id="k" * 11, error_code=None, error_message=None
            ),
            {"call_id": "k" * LIMIT + ELLIPSIS, "error_message": f"{NOTE}call_id (11 characters)]"},
            id="no message before: the note is the message",
        ),
    ],
)
def test_trimmed(before: PlaceCallResult, expected: dict[str, Any] | None) -> None:
    after = trimmed(before, LIMIT)
    if expected is None:
        assert after is None
        return
    assert after is not None
    assert after.model_dump() == before.model_dump() | expected


@pytest.mark.parametrize("limit", [LIMIT, *TRIM_LIMITS])
def test_a_cut_command_id_is_never_a_valid_commands_id(limit: int) -> None:
    cut = trimmed(result(command_id="x" * 5000), limit)
    assert cut is not None
    assert cut.command_id.startswith("x" * limit)
    command = {"command_id": cut.command_id, "fonenumber": "3215551081", "to": "3215550100"}
    with pytest.raises(InvalidCommand, match="command_id"):
        parse_command(json.dumps(command).encode())


def test_the_last_limit_leaves_a_small_record() -> None:
    huge = result(
        command_id="x" * 900_000,
        error_message="m" * 100_000,
        correlation_id="c" * 200,
        metadata={f"k{n}": "v" * 1024 for n in range(32)},
    )
    cut = trimmed(huge, TRIM_LIMITS[-1])
    assert cut is not None
    assert len(cut.model_dump_json()) < 1024
