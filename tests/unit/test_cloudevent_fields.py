"""A published model must give its records a CloudEvents ``id``: refused at definition if not."""

from __future__ import annotations

from typing import ClassVar

import pytest

from bridge.contracts.base import CloudEventFields, VersionedEvent


def test_a_model_naming_no_id_field_and_computing_none_is_refused() -> None:
    with pytest.raises(TypeError, match="names no ce_id field"):

        class Nameless(VersionedEvent):
            schema_name: ClassVar[str] = "nameless"
            schema_version: ClassVar[int] = 1
            cloudevent: ClassVar[CloudEventFields] = CloudEventFields(id=None)

            @property
            def ce_type(self) -> str:
                return "x"


def test_a_model_computing_its_own_id_is_accepted() -> None:
    class Computed(VersionedEvent):
        schema_name: ClassVar[str] = "computed"
        schema_version: ClassVar[int] = 1
        cloudevent: ClassVar[CloudEventFields] = CloudEventFields(id=None)
        n: int

        @property
        def ce_type(self) -> str:
            return "x"

        @property
        def ce_id(self) -> str:
            return f"id-{self.n}"

    assert Computed(n=3).ce_id == "id-3"


def test_a_named_id_field_gives_the_id() -> None:
    class Named(VersionedEvent):
        schema_name: ClassVar[str] = "named"
        schema_version: ClassVar[int] = 1
        cloudevent: ClassVar[CloudEventFields] = CloudEventFields(id="key")
        key: str

        @property
        def ce_type(self) -> str:
            return "x"

    assert Named(key="k-1").ce_id == "k-1"
