"""Which schema goes under which registry subject, and the schema text the registry is given.

Subjects follow Confluent's ``TopicRecordNameStrategy``: ``<topic>-<record name>``, the record
name of a JSON Schema being its ``title`` (the model's class name). One topic carries several
event types (the call-events topic has ``CallEvent`` and ``CallPlaced``), each with its own
subject and history, which ``TopicNameStrategy`` (``<topic>-value``, one schema per topic)
cannot express.
"""

from __future__ import annotations

import json
from typing import Any

from bridge.contracts.base import VersionedEvent
from bridge.contracts.calls import CallEvent, CallPlaced
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult
from bridge.contracts.dead_letters import DeadLetter
from bridge.settings import TopicSettings

#: The JSON Schema dialect the registry is told. The models' own files say draft 2020-12, which
#: Apicurio 2.4's compatibility check cannot read (it answers 500, "could not determine
#: version"); the schemas use nothing draft-07 lacks that changes validation (``$defs`` are
#: reached by JSON pointer, ``$ref`` siblings are annotations only), so the same document
#: registered as draft-07 validates the same records.
REGISTRY_DIALECT = "http://json-schema.org/draft-07/schema#"


def record_name(model: type[VersionedEvent]) -> str:
    """The record name of ``model``'s schema: its ``title``, as Confluent's serializers take it."""
    title = model.json_schema().get("title")
    return title if isinstance(title, str) and title else model.__name__


def subject(topic: str, model: type[VersionedEvent]) -> str:
    """The subject ``model``'s schema is registered under for records on ``topic``."""
    return f"{topic}-{record_name(model)}"


def published(topics: TopicSettings) -> list[tuple[str, type[VersionedEvent]]]:
    """Every (topic, model) the bridge writes or reads, in registration order."""
    return [
        (topics.call_events, CallEvent),
        (topics.call_events, CallPlaced),
        (topics.place_call_results, PlaceCallResult),
        (topics.dead_letters, DeadLetter),
        (topics.place_call, PlaceCallCommand),
    ]


def registry_schema(model: type[VersionedEvent]) -> str:
    """The schema text registered for ``model``: its JSON Schema in :data:`REGISTRY_DIALECT`.

    Always the same text for the same model, so registering it again finds the same version.
    """
    schema: dict[str, Any] = model.json_schema()
    schema["$schema"] = REGISTRY_DIALECT
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))
