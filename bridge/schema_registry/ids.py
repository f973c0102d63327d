"""The schema-id headers of each (topic, schema) the bridge writes, looked up per record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Headers = Sequence[tuple[str, bytes]]
_NONE: Headers = ()


class SchemaIds:
    """Headers naming the registered schema of records of one schema on one topic.

    Built once at start (:mod:`bridge.schema_registry.registration`) and never asked to change:
    a registry that goes away after start changes nothing here.
    """

    def __init__(self, headers: Mapping[tuple[str, str], Headers]) -> None:
        self._headers = dict(headers)

    def headers(self, topic: str, schema_uri: str) -> Headers:
        """The id headers of a record of ``schema_uri`` (its ``$id``) on ``topic``; () if none."""
        return self._headers.get((topic, schema_uri), _NONE)
