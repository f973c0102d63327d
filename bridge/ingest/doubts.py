"""Callbacks as evidence: which ``in_doubt`` command, if any, placed a call no command names.

A command ends ``in_doubt`` when its worker cannot know whether FoneStorm created the call. If
it did, FoneStorm calls back about it: an outbound callback between the command's numbers (its
``(fonenumber, to)`` pair, in E.164), of a call no ``done`` entry names. Such a callback is
taken as that command's call only when nothing else could have made it (:func:`weigh`):

* exactly one ``in_doubt`` command to the pair was placed within
  ``BRIDGE_CALLBACKS__CORRELATION_DOUBT_WINDOW`` before the callback was weighed;
* no placement to the pair is in flight (it could be that one's call);
* the receiver has read the ledger as of the callback (else a placement may be unread).

Two candidates, or one and a placement in flight, are *ambiguous*; an unproven read is
*unproven*: either way the callback stays untagged and no ``CallPlaced`` follows. Never a guess:
a wrong tag would tell consumers a command's call exists when it may not.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from bridge.contracts.calls import CallPlaced, placed_event_id

Pair = tuple[str, str]
#: A callback's ``from`` and ``to`` in E.164 (None: not a phone number, never a command's).
Numbers = tuple[str | None, str | None]


@dataclass(frozen=True)
class Doubt:
    """An ``in_doubt`` command, as its ``done`` ledger entry tells."""

    command_id: str
    correlation_id: str | None
    pair: Pair
    #: When its placement began (s since the epoch): the ``placing`` entry's timestamp, or the
    #: ``done``'s when the ``placing`` was not read. FoneStorm created any call after it.
    since: float
    #: The ``in_doubt`` result's ``finished_at``: FoneStorm created any call before it.
    reported_at: datetime
    #: The trace of the ``done`` entry, if traced.
    traceparent: str | None = None


class Verdict(StrEnum):
    """What a callback's numbers say of the ``in_doubt`` commands (the metric's label)."""

    #: No ``in_doubt`` command to these numbers within the window.
    NONE = "none"
    #: Exactly one, and nothing else could have made the call: the callback is its call's.
    RECONCILED = "reconciled"
    #: More than one could have made it: no guess.
    AMBIGUOUS = "ambiguous"
    #: One could have, but the ledger was not read as of the callback: no guess.
    UNPROVEN = "unproven"


class Evidence(NamedTuple):
    """A :func:`weigh` verdict, the command when reconciled and the candidates considered."""

    verdict: Verdict
    doubt: Doubt | None = None
    candidates: tuple[Doubt, ...] = ()


NO_EVIDENCE = Evidence(Verdict.NONE)


def weigh(
    doubts: Iterable[Doubt], *, in_flight: bool, proven: bool, now: float, window: float
) -> Evidence:
    """Which of ``doubts`` (``in_doubt`` commands to a callback's numbers) placed its call.

    ``in_flight``: a placement to the same numbers is in flight; ``proven``: the ledger was read
    as of the callback; ``now``: when it is weighed (s since the epoch). A placement later than
    ``now`` by the clocks' skew still counts: it cannot be told from one just before.
    """
    candidates = tuple(d for d in doubts if now - d.since <= window)
    if not candidates:
        return NO_EVIDENCE
    if len(candidates) > 1 or in_flight:
        return Evidence(Verdict.AMBIGUOUS, None, candidates)
    if not proven:
        return Evidence(Verdict.UNPROVEN, None, candidates)
    return Evidence(Verdict.RECONCILED, candidates[0], candidates)


class Doubts:
    """The ``in_doubt`` commands read from the ledger, by command and by pair, for a window."""

    def __init__(self, window: float, max_size: int) -> None:
        self._window = window
        self._max = max_size
        self._by_command: OrderedDict[str, Doubt] = OrderedDict()  # oldest first
        self._by_pair: dict[Numbers, dict[str, Doubt]] = {}

    def __len__(self) -> int:
        return len(self._by_command)

    def add(self, doubt: Doubt) -> None:
        """Remember ``doubt`` (in place of the command's earlier one)."""
        self.forget(doubt.command_id)
        self._by_command[doubt.command_id] = doubt
        self._by_pair.setdefault(doubt.pair, {})[doubt.command_id] = doubt

    def forget(self, command_id: str) -> None:
        """Forget the command's doubt, if any."""
        doubt = self._by_command.pop(command_id, None)
        if doubt is None:
            return
        same_pair = self._by_pair[doubt.pair]
        del same_pair[command_id]
        if not same_pair:
            del self._by_pair[doubt.pair]

    def between(self, numbers: Numbers) -> Iterable[Doubt]:
        """The doubts of commands from ``numbers[0]`` to ``numbers[1]``."""
        found = self._by_pair.get(numbers)
        return () if found is None else found.values()

    def expire(self, now: float) -> None:
        """Forget doubts older than the window, and the oldest beyond the size bound."""
        # Oldest first by the ledger's order; a timestamp is the writer's clock: stop at the
        # first young one rather than scan everything.
        cutoff = now - self._window
        while self._by_command:
            command_id, doubt = next(iter(self._by_command.items()))
            if doubt.since >= cutoff and len(self._by_command) <= self._max:
                break
            self.forget(command_id)


def reconciled_call(call_id: str, doubt: Doubt) -> CallPlaced:
    """The ``CallPlaced`` (``reconciled``) of a call its callbacks showed to be ``doubt``'s.

    Its id is the one the worker gives the same call's event (:func:`placed_event_id`).
    ``placed_at`` is when the command was reported: FoneStorm created the call before.
    """
    return CallPlaced(
        event_id=placed_event_id(call_id),
        call_id=call_id,
        command_id=doubt.command_id,
        correlation_id=doubt.correlation_id,
        fonenumber=doubt.pair[0],
        to=doubt.pair[1],
        placed_at=doubt.reported_at,
        reconciled=True,
    )
