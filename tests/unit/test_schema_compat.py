"""A schema stays BACKWARD compatible with its released version; `schemas check` enforces it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bridge import cli
from bridge.contracts import registry as schemas
from bridge.contracts.compat import Schema, backward_incompatibilities


def _obj(props: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required), **extra}


STR = {"type": "string"}
INT = {"type": "integer"}
CLOSED = {"additionalProperties": False}
STATUS = {"type": "string", "enum": ["ringing", "answered"]}
NULLABLE_STR = {"anyOf": [STR, {"type": "null"}], "default": None}

# (case, old = the released schema, new = the schema about to ship, rules expected; [] = passes)
CASES: list[tuple[str, Schema, Schema, list[str]]] = [
    # Properties, closed content model (additionalProperties: false, like the bridge's events).
    (
        "added optional field",
        _obj({"a": STR}, ("a",), **CLOSED),
        _obj({"a": STR, "b": STR}, ("a",), **CLOSED),
        [],
    ),
    (
        "removed required field",
        _obj({"a": STR, "b": STR}, ("a", "b"), **CLOSED),
        _obj({"a": STR}, ("a",), **CLOSED),
        ["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"],
    ),
    (
        "removed optional field",
        _obj({"a": STR, "b": STR}, ("a",), **CLOSED),
        _obj({"a": STR}, ("a",), **CLOSED),
        ["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"],
    ),
    (
        "added required field",
        _obj({"a": STR}, ("a",), **CLOSED),
        _obj({"a": STR, "b": STR}, ("a", "b"), **CLOSED),
        ["REQUIRED_PROPERTY_ADDED"],
    ),
    (
        "optional field made required",
        _obj({"a": STR, "b": STR}, ("a",), **CLOSED),
        _obj({"a": STR, "b": STR}, ("a", "b"), **CLOSED),
        ["REQUIRED_ATTRIBUTE_ADDED"],
    ),
    (
        "required field made optional",
        _obj({"a": STR, "b": STR}, ("a", "b"), **CLOSED),
        _obj({"a": STR, "b": STR}, ("a",), **CLOSED),
        [],
    ),
    (
        "descriptions and titles changed",
        _obj({"a": {**STR, "description": "x"}}, ("a",), title="Old", **CLOSED),
        _obj({"a": {**STR, "description": "y"}}, ("a",), title="New", **CLOSED),
        [],
    ),
    # Properties, open content model (additionalProperties absent, like the command).
    (
        "open: added optional field",
        _obj({"a": STR}, ("a",)),
        _obj({"a": STR, "b": STR}, ("a",)),
        ["PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"],
    ),
    ("open: removed required field", _obj({"a": STR, "b": STR}, ("a", "b")), _obj({"a": STR}), []),
    # Partially open content model: additionalProperties is a schema.
    (
        "partially open: added field its additionalProperties covers",
        _obj({"a": STR}, additionalProperties=STR),
        _obj({"a": STR, "b": {**STR, "description": "now named"}}, additionalProperties=STR),
        [],
    ),
    (
        "partially open: added field of another type",
        _obj({"a": STR}, additionalProperties=STR),
        _obj({"a": STR, "b": INT}, additionalProperties=STR),
        ["PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
    ),
    # additionalProperties itself.
    ("closed model opened", _obj({"a": STR}, **CLOSED), _obj({"a": STR}), []),
    (
        "open model closed",
        _obj({"a": STR}),
        _obj({"a": STR}, **CLOSED),
        ["ADDITIONAL_PROPERTIES_REMOVED"],
    ),
    (
        "open model narrowed to a schema",
        _obj({"a": STR}),
        _obj({"a": STR}, additionalProperties=STR),
        ["ADDITIONAL_PROPERTIES_NARROWED"],
    ),
    (
        "map values widened",
        {"type": "object", "additionalProperties": INT},
        {"type": "object", "additionalProperties": {"type": "number"}},
        [],
    ),
    (
        "map values changed type",
        {"type": "object", "additionalProperties": INT},
        {"type": "object", "additionalProperties": STR},
        ["TYPE_CHANGED"],
    ),
    # Types.
    ("type unchanged", STR, STR, []),
    ("type changed", STR, INT, ["TYPE_CHANGED"]),
    ("integer widened to number", INT, {"type": "number"}, []),
    ("number narrowed to integer", {"type": "number"}, INT, ["TYPE_CHANGED"]),
    ("type list narrowed", {"type": ["string", "null"]}, STR, ["TYPE_NARROWED"]),
    ("type list widened", STR, {"type": ["string", "null"]}, []),
    ("made nullable (anyOf with null)", STR, NULLABLE_STR, []),
    ("nullable made non-null", NULLABLE_STR, STR, ["SUM_TYPE_NARROWED"]),
    ("type added to an untyped field", {}, STR, ["TYPE_NARROWED"]),
    ("type removed", STR, {}, []),
    (
        "nested field changed type",
        _obj({"p": _obj({"n": STR}, ("n",), **CLOSED)}, ("p",), **CLOSED),
        _obj({"p": _obj({"n": INT}, ("n",), **CLOSED)}, ("p",), **CLOSED),
        ["TYPE_CHANGED"],
    ),
    # Enums.
    ("enum widened", STATUS, {**STATUS, "enum": ["ringing", "answered", "busy"]}, []),
    ("enum narrowed", STATUS, {**STATUS, "enum": ["ringing"]}, ["ENUM_ARRAY_NARROWED"]),
    ("enum added to a free string", STR, STATUS, ["ENUM_ADDED"]),
    ("enum removed", STATUS, STR, []),
    (
        "enum narrowed behind a $ref",
        {"$defs": {"S": STATUS}, **_obj({"s": {"$ref": "#/$defs/S"}}, ("s",), **CLOSED)},
        {
            "$defs": {"S": {**STATUS, "enum": ["answered"]}},
            **_obj({"s": {"$ref": "#/$defs/S"}}, ("s",), **CLOSED),
        },
        ["ENUM_ARRAY_NARROWED"],
    ),
    # String and number constraints.
    ("maxLength raised", {**STR, "maxLength": 32}, {**STR, "maxLength": 64}, []),
    (
        "maxLength lowered",
        {**STR, "maxLength": 32},
        {**STR, "maxLength": 16},
        ["maxLength_CHANGED"],
    ),
    ("maxLength added", STR, {**STR, "maxLength": 16}, ["maxLength_ADDED"]),
    ("minimum raised", {**INT, "minimum": 0}, {**INT, "minimum": 1}, ["minimum_CHANGED"]),
    ("pattern added", STR, {**STR, "pattern": "^x"}, ["PATTERN_ADDED"]),
    ("format removed", {**STR, "format": "date-time"}, STR, []),
    # Keywords the checker does not model fail closed.
    ("not added", STR, {**STR, "not": {"const": ""}}, ["UNCHECKED_KEYWORD_CHANGED"]),
    (
        "patternProperties removed from a closed model",
        _obj({}, patternProperties={"^x-": STR}, **CLOSED),
        _obj({}, **CLOSED),
        ["UNCHECKED_KEYWORD_CHANGED"],
    ),
    (
        "draft 4 boolean exclusiveMaximum set",
        {**INT, "maximum": 9, "exclusiveMaximum": False},
        {**INT, "maximum": 9, "exclusiveMaximum": True},
        ["UNCHECKED_KEYWORD_CHANGED"],
    ),
]


@pytest.mark.parametrize(("old", "new", "rules"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_backward_compatibility(old: Schema, new: Schema, rules: list[str]) -> None:
    assert [problem.rule for problem in backward_incompatibilities(old, new)] == rules


def test_recursive_definitions_terminate() -> None:
    node = _obj({"child": {"$ref": "#/$defs/Node"}}, **CLOSED)
    schema = {"$defs": {"Node": node}, "$ref": "#/$defs/Node"}
    assert backward_incompatibilities(schema, schema) == []


def test_every_published_schema_is_compatible_with_itself() -> None:
    for name, text in schemas.render_all().items():
        schema = json.loads(text)
        assert backward_incompatibilities(schema, schema) == [], name


# `schemas check` on real files: the current schemas against a released folder that differs.


@pytest.fixture
def released(tmp_path: Path) -> Path:
    folder = tmp_path / "released"
    folder.mkdir()
    for name in schemas.render_all():
        shutil.copy(schemas.DEFAULT_DIR / name, folder / name)
    return folder


def _edit_released(folder: Path, name: str, edit: Any) -> None:
    path = folder / name
    schema = json.loads(path.read_text(encoding="utf-8"))
    edit(schema)
    path.write_text(json.dumps(schema), encoding="utf-8")


def _check(released: Path) -> int:
    return cli.main(["schemas", "check", "--released", str(released)])


def test_check_passes_against_the_released_schemas_in_the_repo() -> None:
    assert schemas.incompatible() == {}
    assert cli.main(["schemas", "check"]) == 0


def test_check_passes_when_the_current_schema_added_an_optional_field(released: Path) -> None:
    # The released version lacks an optional field the current one has.
    def drop_optional(schema: dict[str, Any]) -> None:
        del schema["properties"]["correlation_id"]

    _edit_released(released, "call-placed.v1.json", drop_optional)
    assert _check(released) == 0


def test_check_fails_when_the_current_schema_removed_a_required_field(
    released: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The released version had a required field the current one no longer has.
    def add_required(schema: dict[str, Any]) -> None:
        schema["properties"]["trunk"] = {"type": "string"}
        schema["required"].append("trunk")

    _edit_released(released, "call-placed.v1.json", add_required)
    assert _check(released) == 1
    err = capsys.readouterr().err
    assert (
        "incompatible: call-placed.v1.json: #/properties/trunk: "
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL" in err
    )
    assert "stale:" not in err


def test_check_fails_when_an_enum_value_was_dropped(
    released: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def add_status(schema: dict[str, Any]) -> None:
        schema["$defs"]["ResultStatus"]["enum"].append("postponed")

    _edit_released(released, "place-call-result.v1.json", add_status)
    assert _check(released) == 1
    assert "ENUM_ARRAY_NARROWED" in capsys.readouterr().err


def test_a_new_version_is_not_compared_with_an_older_one(released: Path) -> None:
    # A breaking change ships as a new file: v1's released file does not bind v2.
    _edit_released(released, "call-placed.v1.json", lambda s: s["required"].append("trunk"))
    (released / "call-placed.v1.json").rename(released / "call-placed.v0.json")
    assert _check(released) == 0
