"""The command ledger's records: written by the worker, read by workers and receivers.

Workers read it to place each command at most once; receivers read it to tag the callbacks of
calls the bridge placed (``done`` names the call id) and to know which ``(fonenumber, to)``
pairs have a placement in flight (``placing``), so only those callbacks wait.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.contracts.commands import PlaceCallResult


class LedgerState(StrEnum):
    """Where a command stands."""

    PLACING = "placing"
    PENDING = "pending"
    DONE = "done"


class LedgerEntry(BaseModel):
    """Value of one ledger record (key: ``command_id``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    command_id: str
    state: LedgerState
    source: str = Field(description="topic/partition/offset of the command record.")
    result: PlaceCallResult | None = None
    updated_at: datetime
    fonenumber: str | None = Field(
        None, description="The command's FoneNumber in E.164 (None when it is not a number)."
    )
    to: str | None = Field(
        None, description="The number called, in E.164 (None when it is not a number)."
    )
    writer: str | None = Field(
        None,
        description="Which handling of the command wrote the entry (unique per job): a worker "
        "tells its own entries from those of another worker handling the same command.",
    )


def read_entry(value: bytes | None) -> LedgerEntry | None:
    """The entry a ledger record's value holds; None for a tombstone or a value that is not one.

    Readers skip what they cannot read: a newer writer's record must not stop an older reader.
    """
    if value is None:
        return None
    try:
        return LedgerEntry.model_validate_json(value)
    except ValidationError:
        return None
