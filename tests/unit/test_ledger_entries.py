"""Ledger entries as readers take them: what a newer worker added is ignored, not refused.

A worker, receiver or dead-letters tool of an older version reads the entries of a newer one
during a rolling update or after a rollback; what the bridge writes is still checked strictly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.commands.decision import Finish, decide
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult, ResultStatus
from bridge.contracts.ledger import LedgerEntry, LedgerState, parse_entry, read_entry

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def done(**extra: Any) -> dict[str, Any]:
    """A ``done`` entry as JSON data, as this version writes it."""
    result = PlaceCallResult(
        command_id="c1",
        status=ResultStatus.PLACED,
        call_id="call-9",
        attempts=1,
        received_at=NOW,
        finished_at=NOW,
    )
    entry = LedgerEntry(
        command_id="c1", state=LedgerState.DONE, source="commands/0/7", result=result,
        updated_at=NOW,
    )  # fmt: skip
    return json.loads(entry.model_dump_json()) | extra


def with_result_field(name: str, value: object) -> dict[str, Any]:
    data = done()
    data["result"][name] = value
    return data


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(done(), id="this version"),
        pytest.param(with_result_field("billed_seconds", 42), id="a field added to the result"),
        pytest.param(done(attempted_from="eu-west-1"), id="a field added to the entry"),
        pytest.param(
            with_result_field("carrier", {"name": "x"}) | {"lease": 3},
            id="fields added to both",
        ),
    ],
)
def test_newer_entries_are_read_with_what_this_version_knows(data: dict[str, Any]) -> None:
    value = json.dumps(data).encode()
    for entry in (parse_entry(value), read_entry(value)):
        assert entry is not None
        assert (entry.state, entry.source) == (LedgerState.DONE, "commands/0/7")
        assert entry.result is not None
        assert (entry.result.status, entry.result.call_id) == (ResultStatus.PLACED, "call-9")
        # Published again as this version's result (Republish): only the fields it knows.
        assert json.loads(entry.result.model_dump_json()) == done()["result"]


def test_a_copy_of_a_command_a_newer_worker_finished_is_a_duplicate() -> None:
    entry = parse_entry(json.dumps(with_result_field("billed_seconds", 42)).encode())
    command = PlaceCallCommand(command_id="c1", fonenumber="3215551081", to="3215550100")
    action = decide(
        command, entry, source="commands/0/41", now=NOW, written_at=NOW, retention=86400.0,
        delivery="at-most-once", refusal=None,
    )  # fmt: skip
    assert isinstance(action, Finish)
    assert (action.status, action.call_id) == (ResultStatus.DUPLICATE, "call-9")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="tombstone"),
        pytest.param(b"not json", id="not JSON"),
        pytest.param(json.dumps({"command_id": "c1"}).encode(), id="no state"),
        pytest.param(json.dumps(done(state="archived")).encode(), id="a state it does not know"),
    ],
)
def test_what_is_no_entry_is_skipped(value: bytes | None) -> None:
    assert read_entry(value) is None


def test_the_bridge_still_writes_results_strictly() -> None:
    with pytest.raises(ValidationError, match="billed_seconds"):
        PlaceCallResult.model_validate(done()["result"] | {"billed_seconds": 42})
    assert PlaceCallResult.json_schema()["additionalProperties"] is False
