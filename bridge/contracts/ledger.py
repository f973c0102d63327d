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
    """Value of one ledger record (key: ``command_id``), as the worker writes it.

    Read entries with :func:`parse_entry` or :func:`read_entry`, which take fields a newer
    writer added, also inside ``result``, without refusing the entry.
    """

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
    withdrawn_by: str | None = Field(
        None,
        description="On a copy of another job's entry put back by a job whose claim lost: "
        "that job's writer. It sends nothing for the command.",
    )
    lost_to: list[str] = Field(
        default_factory=list,
        description="With ``withdrawn_by``: the writers whose entries that claim lost to.",
    )


class _ResultAsRead(PlaceCallResult):
    # The published result refuses unknown fields (its schema says so, and what the worker
    # writes is checked against it); a reader must not: a `done` it cannot read looks like no
    # entry at all, and an older worker would place that command again.
    model_config = ConfigDict(extra="ignore", frozen=True, use_enum_values=False)


class _EntryAsRead(LedgerEntry):
    result: _ResultAsRead | None = None


def parse_entry(value: bytes) -> LedgerEntry:
    """The entry in a ledger record's value, fields unknown to this version ignored.

    Raises ``ValidationError`` when the value is not an entry.
    """
    return _EntryAsRead.model_validate_json(value)


def read_entry(value: bytes | None) -> LedgerEntry | None:
    """The entry a ledger record's value holds; None for a tombstone or a value that is not one.

    Readers skip what they cannot read: a newer writer's record must not stop an older reader.
    """
    if value is None:
        return None
    try:
        return parse_entry(value)
    except ValidationError:
        return None
