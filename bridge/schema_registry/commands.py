"""Commands as the worker reads them: plain JSON, or the Confluent wire format in registry mode.

A framed command names its schema by id. In registry mode the id must be one of the command
subject's versions (the worker validates every command against its own model, which BACKWARD
compatibility lets read any of them); in plain mode a frame means a producer configured for a
registry the bridge does not use. Either way a command that fails is refused as invalid (dead
letter and ``rejected`` result), with a reason that says which id and why: never lost, never
called.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from bridge.contracts.commands import PlaceCallCommand, parse_command
from bridge.errors import InvalidCommand
from bridge.schema_registry.client import RegistryClient, RegistryError
from bridge.schema_registry.wire import parse_frame

log = logging.getLogger(__name__)

#: Answers about ids kept at most (each is one small list).
MAX_REMEMBERED_IDS = 1024
#: Subjects a refusal names at most (one schema text may be registered under many).
MAX_NAMED_SUBJECTS = 3


def frame_problem(
    schema_id: int,
    *,
    subject: str | None,
    known: Collection[int],
    found: Sequence[tuple[str, int]] | str | None,
) -> InvalidCommand | None:
    """Why a command framed with ``schema_id`` is refused, or None to read it.

    ``subject`` is the command subject (None: plain mode); ``known`` the ids of its versions;
    ``found`` what the registry said of the id: its (subject, version) pairs, or why it could
    not be asked (a string), or None when it was not asked.
    """
    if subject is None:
        return InvalidCommand(
            f"value is in the schema-registry wire format (magic byte 0, schema id {schema_id}) "
            "but the bridge runs without a registry (BRIDGE_SCHEMAS__REGISTRY_URL unset): "
            "produce plain JSON, or run the worker in registry mode",
            code="framed_without_registry",
        )
    if schema_id in known:
        return None
    if isinstance(found, str):
        return InvalidCommand(
            f"schema id {schema_id} is not a version of subject {subject} known at start, and "
            f"the schema registry could not be asked about it ({found})",
            code="schema_id_unverified",
        )
    if not found:
        return InvalidCommand(
            f"schema id {schema_id} is unknown to the schema registry", code="schema_id_unknown"
        )
    if any(name == subject for name, _ in found):
        return None
    where = ", ".join(f"{name} v{version}" for name, version in found[:MAX_NAMED_SUBJECTS])
    if len(found) > MAX_NAMED_SUBJECTS:
        where += f" and {len(found) - MAX_NAMED_SUBJECTS} more"
    return InvalidCommand(
        f"schema id {schema_id} is registered under {where}, not under the command subject "
        f"{subject}",
        code="schema_id_mismatch",
    )


class CommandReader:
    """Reads a command record's value: plain JSON, or framed with a schema id it checks."""

    def __init__(
        self,
        subject: str | None = None,
        known: Collection[int] = (),
        client: RegistryClient | None = None,
    ) -> None:
        self.subject = subject
        self._known = set(known)
        self._client = client
        self._answers: dict[int, list[tuple[str, int]]] = {}

    async def read(self, value: bytes | None) -> PlaceCallCommand:
        """The command in ``value``, or :class:`InvalidCommand` saying what is wrong."""
        frame = parse_frame(value)
        if frame.schema_id is not None:
            found = await self._found(frame.schema_id)
            problem = frame_problem(
                frame.schema_id, subject=self.subject, known=self._known, found=found
            )
            if problem is not None:
                raise problem
            self._known.add(frame.schema_id)
        return parse_command(frame.payload)

    async def _found(self, schema_id: int) -> Sequence[tuple[str, int]] | str | None:
        if self.subject is None or self._client is None or schema_id in self._known:
            return None
        if schema_id in self._answers:
            return self._answers[schema_id]
        try:
            answer = await self._client.subjects_of_id(schema_id)
        except RegistryError as exc:
            log.warning("asking the schema registry about id %d failed: %s", schema_id, exc)
            return exc.message
        if len(self._answers) >= MAX_REMEMBERED_IDS:
            self._answers.pop(next(iter(self._answers)))
        self._answers[schema_id] = answer
        return answer
