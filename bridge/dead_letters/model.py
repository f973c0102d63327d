"""What the tool reads and writes: dead-letter entries as read, the replay and audit records.

The replay record is internal bookkeeping (like the command ledger), not a published event:
one record per dead letter on the compacted ``BRIDGE_TOPICS__DEAD_LETTER_REPLAYS`` topic, keyed
by ``dead_letter_id``, whose latest value says what the last replay did with it. The audit
record (``BRIDGE_TOPICS__DEAD_LETTER_AUDIT``, never compacted) keeps every replay's act: who
ran it, when, on which dead letter, what it decided and where it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bridge.contracts.dead_letters import DeadLetter
from bridge.dead_letters.integrity import Integrity

#: Header of every replayed record: the id of the dead letter it came from.
REPLAYED_FROM_HEADER = "bridge_replayed_from"

#: Outcomes a replay record keeps. Only ``replayed`` is final: a dead letter still invalid is
#: tried again by the next replay (a later release may accept it).
RecordedOutcome = Literal["replayed", "still_invalid"]


class ProducedTo(BaseModel):
    """Where the replayed record went."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class ReplayRecord(BaseModel):
    """The latest replay of one dead letter (value of the replay topic, key ``dead_letter_id``)."""

    # Unknown fields are ignored: a newer tool may add some, and an older one must still
    # see that a dead letter was replayed.
    model_config = ConfigDict(extra="ignore", frozen=True)

    dead_letter_id: str
    source: Literal["callback", "command"] | None = None
    outcome: RecordedOutcome
    reason_code: str | None = Field(None, description="Why it is still invalid.")
    reason: str | None = Field(None, description="Why it is still invalid, for people.")
    replayed_at: datetime
    produced_to: ProducedTo | None = None


class Operator(BaseModel):
    """Who ran a replay, as far as the machine it ran on can tell."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user: str = Field(description="Operating-system user (or `uid N` without a name).")
    host: str = Field(description="Host name.")
    pid: int = Field(description="Process id.")
    kafka_user: str | None = Field(description="SASL user the replay authenticated as, if any.")
    client_id: str = Field(description="Kafka client id.")


class AuditRecord(BaseModel):
    """One replay's act on one dead letter (value of the audit topic, key ``dead_letter_id``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    dead_letter_id: str
    source: Literal["callback", "command"]
    dead_letter: ProducedTo = Field(description="Where the dead letter is.")
    dead_lettered_as: str = Field(description="The dead letter's own reason code.")
    integrity: Integrity = Field(description="What its signature showed.")
    allow_unsigned: bool = Field(description="Whether the replay ran with --allow-unsigned.")
    outcome: RecordedOutcome
    what: str = Field("", description="What was replayed (the command or call).")
    reason_code: str | None = Field(None, description="Why it is still invalid.")
    reason: str | None = Field(None, description="Why it is still invalid, for people.")
    produced_to: ProducedTo | None = None
    key: str | None = Field(None, description="Key of the record produced.")
    replayed_at: datetime
    operator: Operator
    version: str = Field(description="Version of the bridge that replayed it.")


@dataclass(frozen=True)
class Entry:
    """One record of the dead-letter topic: the dead letter, or why it could not be read."""

    partition: int
    offset: int
    timestamp_ms: int
    letter: DeadLetter | None
    error: str | None = None
    #: The record's value as read, and its signature headers: what the signature covers.
    value: bytes = b""
    signatures: tuple[bytes, ...] = ()

    @property
    def where(self) -> str:
        """``partition@offset`` in the dead-letter topic."""
        return f"{self.partition}@{self.offset}"


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command looks at (``--since``/``--until`` bound the read itself)."""

    since: datetime | None = None
    until: datetime | None = None
    reasons: frozenset[str] = frozenset()
    source: Literal["callback", "command"] | None = None

    def wants(self, entry: Entry) -> bool:
        """Whether ``entry`` passes ``--reason`` and ``--source``; an unreadable record passes
        only when neither is given (it has no reason or source to match)."""
        letter = entry.letter
        if letter is None:
            return not self.reasons and self.source is None
        if self.reasons and letter.reason_code not in self.reasons:
            return False
        return self.source is None or letter.source == self.source


@dataclass(frozen=True)
class LedgerView:
    """What the worker's command ledger tells a replay (empty when there is no ledger)."""

    #: ``call_id -> (command_id, correlation_id)`` of calls the bridge placed: a replayed
    #: callback of one carries them, as the receiver's event would have.
    correlations: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    #: ``command_id -> result status`` of commands the worker finished: it remembers them for
    #: ``BRIDGE_WORKER__LEDGER_RETENTION`` and answers a copy with ``duplicate``, no call.
    finished: dict[str, str] = field(default_factory=dict)
