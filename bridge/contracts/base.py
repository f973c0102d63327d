"""What every published model has: a schema id and version, and its CloudEvent attributes.

Every model is a public contract: its JSON Schema lives in ``schemas/`` (written by
``fonestorm-bridge schemas export``) and its ``$id`` is the ``ce_dataschema`` header of every
record that carries it. Within a version a schema changes only in BACKWARD compatible ways
(``schemas check`` compares it with its copy in ``schemas/released/``); anything else needs a
new model and a new topic version.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from abc import abstractmethod
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict

SCHEMA_BASE_URI = "https://schemas.fonestorm-bridge.dev/"


class CloudEventFields(NamedTuple):
    """The fields of a published model that give the CloudEvent attributes of its record."""

    #: ``id`` (None: the model computes :attr:`VersionedEvent.ce_id` itself).
    id: str | None
    #: ``subject``, and the record key (None: neither).
    subject: str | None = None
    #: ``time`` (None: when the record is published).
    time: str | None = None


class VersionedEvent(BaseModel):
    """Base of every published model: frozen, no unknown fields, a schema id and version."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    #: Short schema name, used in the file name and ``$id``.
    schema_name: ClassVar[str]
    schema_version: ClassVar[int]
    #: Where the CloudEvent attributes below come from: every model names its own.
    cloudevent: ClassVar[CloudEventFields]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse, at definition, a model whose records would have no CloudEvents ``id``."""
        super().__pydantic_init_subclass__(**kwargs)
        fields = getattr(cls, "cloudevent", None)
        if fields is not None and fields.id is None and cls.ce_id is VersionedEvent.ce_id:
            raise TypeError(f"{cls.__name__} names no ce_id field and does not compute ce_id")

    @classmethod
    def schema_id(cls) -> str:
        """URI naming this schema version; also the ``ce_dataschema`` header."""
        return f"{SCHEMA_BASE_URI}{cls.schema_name}/v{cls.schema_version}.json"

    @classmethod
    def schema_file(cls) -> str:
        """File name of the schema in ``schemas/``."""
        return f"{cls.schema_name}.v{cls.schema_version}.json"

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of this model, with ``$id``."""
        schema = cls.model_json_schema(mode="serialization")
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": cls.schema_id(),
            **schema,
        }

    # The CloudEvent attributes of the record that carries the model: each model knows its
    # own, so a publisher needs only the topic and the CloudEvents ``source``.

    # Abstract (pydantic's model metaclass is an ABCMeta): a published model that forgets
    # it cannot even be instantiated.

    @property
    @abstractmethod
    def ce_type(self) -> str:
        """CloudEvents ``type``."""

    @property
    def ce_id(self) -> str:
        """CloudEvents ``id``: stable, so a record written twice can be de-duplicated."""
        # Never None here: __pydantic_init_subclass__ refuses a model that names no id field
        # and does not compute ce_id itself.
        value: str = getattr(self, str(self.cloudevent.id))
        return value

    @property
    def ce_subject(self) -> str | None:
        """CloudEvents ``subject``: what the event is about (a call or command id)."""
        field = self.cloudevent.subject
        value: str | None = None if field is None else getattr(self, field)
        return value

    @property
    def ce_time(self) -> datetime | None:
        """CloudEvents ``time``: when it happened; ``None`` means when it is published."""
        field = self.cloudevent.time
        value: datetime | None = None if field is None else getattr(self, field)
        return value

    @property
    def kafka_key(self) -> str | None:
        """Record key, the subject: every record about one call (or one command) on one
        partition."""
        return self.ce_subject


def uuid5(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))``, without the ``UUID`` objects that cost more than
    the hash itself on the callback and command paths."""
    sha1 = _namespace_hash(namespace).copy()
    sha1.update(name.encode())
    h = sha1.hexdigest()
    # Version 5 in the 13th digit, the RFC 4122 variant in the top bits of the 17th.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


@functools.lru_cache(maxsize=64)
def _namespace_hash(namespace: uuid.UUID) -> hashlib._Hash:
    return hashlib.sha1(namespace.bytes, usedforsecurity=False)


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)
