"""BACKWARD compatibility of two JSON Schemas, after Confluent Schema Registry's JSON Schema rules.

BACKWARD: a consumer validating with the *new* schema reads every record written with the
*old* one. The check walks both schemas side by side and names each change that could make an
old record invalid under the new schema, using Confluent's difference names where it has one.
The rules are a documented subset (the README's "Schemas" section); a change to a keyword the
subset does not model is reported as incompatible rather than waved through.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Schema = Mapping[str, Any] | bool

#: Keywords that never change which documents validate.
_ANNOTATIONS = frozenset(
    {
        "$id",
        "$schema",
        "$comment",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)

#: Keywords the walk below understands; any other keyword that differs is reported.
_MODELLED = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "items",
        "format",
        "pattern",
    }
)

#: Upper bounds: adding one or lowering it refuses old data that used to pass.
_UPPER = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
#: Lower bounds: adding one or raising it refuses old data that used to pass.
_LOWER = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")


@dataclass(frozen=True)
class Incompatibility:
    """One change that lets an old record fail the new schema."""

    path: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule} ({self.detail})"


def backward_incompatibilities(old: Schema, new: Schema) -> list[Incompatibility]:
    """Every reason a reader using ``new`` may refuse data written with ``old``; [] if none."""
    return _Walk(old, new).compare(old, new, "#")


def _is_any(schema: Schema) -> bool:
    if isinstance(schema, bool):
        return schema
    return not (set(schema) - _ANNOTATIONS)


def _types(schema: Mapping[str, Any]) -> frozenset[str] | None:
    """The JSON types a schema admits, or None when it does not restrict them."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(declared)
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _branches(schema: Mapping[str, Any]) -> list[Schema] | None:
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list):
            return list(schema[keyword])
    return None


def _content_model(schema: Mapping[str, Any]) -> Schema:
    """``additionalProperties`` as a schema: absent means open (``True``)."""
    extra = schema.get("additionalProperties", True)
    return extra if isinstance(extra, bool | Mapping) else True


class _Walk:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.in_progress: set[tuple[str, str]] = set()

    def compare(self, old: Schema, new: Schema, path: str) -> list[Incompatibility]:
        old, old_ref = self._resolve(self.old_root, old)
        new, new_ref = self._resolve(self.new_root, new)
        if old_ref or new_ref:
            # Recursive definitions: a pair already being compared is assumed compatible.
            key = (old_ref or repr(old), new_ref or repr(new))
            if key in self.in_progress:
                return []
            self.in_progress.add(key)
            try:
                return self._compare_resolved(old, new, path)
            finally:
                self.in_progress.discard(key)
        return self._compare_resolved(old, new, path)

    def _resolve(self, root: Schema, schema: Schema) -> tuple[Schema, str]:
        ref = ""
        seen = set()
        while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if ref in seen or not ref.startswith("#/") or not isinstance(root, Mapping):
                break
            seen.add(ref)
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part) if isinstance(target, Mapping) else None
            if not isinstance(target, bool | Mapping):
                break
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings} if siblings and isinstance(target, Mapping) else target
        return schema, ref

    def _compare_resolved(self, old: Schema, new: Schema, path: str) -> list[Incompatibility]:
        if _is_any(new) or old is False:
            return []
        if not isinstance(new, Mapping):  # False: nothing validates
            return [Incompatibility(path, "SCHEMA_REMOVED", "the new schema accepts nothing")]
        if not isinstance(old, Mapping) or _is_any(old):
            return [Incompatibility(path, "TYPE_NARROWED", "any value was allowed before")]
        old_branches, new_branches = _branches(old), _branches(new)
        if old_branches is not None or new_branches is not None:
            return self._compare_sums(old, new, old_branches, new_branches, path)
        out = self._compare_types(old, new, path)
        if out:
            return out  # a type change makes the finer differences noise
        out += self._compare_values(old, new, path)
        out += self._compare_bounds(old, new, path)
        out += self._compare_objects(old, new, path)
        for keyword in ("items", "propertyNames"):
            if keyword in new:
                out += self.compare(old.get(keyword, True), new[keyword], f"{path}/{keyword}")
        out += self._compare_unmodelled(old, new, path)
        return out

    def _compare_sums(
        self,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        old_branches: list[Schema] | None,
        new_branches: list[Schema] | None,
        path: str,
    ) -> list[Incompatibility]:
        """anyOf/oneOf: every old alternative must be readable by some new alternative."""
        olds: list[Schema] = old_branches if old_branches is not None else [old]
        news: list[Schema] = new_branches if new_branches is not None else [new]
        if len(olds) == 1 and len(news) == 1:
            return self.compare(olds[0], news[0], path)
        out = []
        for index, branch in enumerate(olds):
            trials = [self.compare(branch, candidate, path) for candidate in news]
            if all(trials):
                where = f"{path}/anyOf/{index}" if old_branches is not None else path
                closest = min(trials, key=len)
                out.append(
                    Incompatibility(
                        where,
                        "SUM_TYPE_NARROWED",
                        "no new alternative reads it: " + "; ".join(map(str, closest)),
                    )
                )
        return out

    def _compare_types(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[Incompatibility]:
        old_types, new_types = _types(old), _types(new)
        if new_types is None:
            return []
        if old_types is None:
            return [Incompatibility(path, "TYPE_NARROWED", f"now only {sorted(new_types)}")]
        widened = new_types | ({"integer"} if "number" in new_types else set())
        lost = old_types - widened
        if lost:
            rule = "TYPE_CHANGED" if not old_types & new_types else "TYPE_NARROWED"
            return [Incompatibility(path, rule, f"{sorted(old_types)} -> {sorted(new_types)}")]
        return []

    def _compare_values(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[Incompatibility]:
        new_values = _values(new)
        if new_values is None:
            return []
        old_values = _values(old)
        if old_values is None:
            return [Incompatibility(path, "ENUM_ADDED", f"only {new_values} now")]
        missing = [value for value in old_values if value not in new_values]
        if missing:
            return [Incompatibility(path, "ENUM_ARRAY_NARROWED", f"{missing} no longer allowed")]
        return []

    def _compare_bounds(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[Incompatibility]:
        out = []
        for keyword, tighter in [(k, operator.lt) for k in _UPPER] + [
            (k, operator.gt) for k in _LOWER
        ]:
            if keyword not in new:
                continue
            if keyword in old and not (_is_number(old[keyword]) and _is_number(new[keyword])):
                # Draft 4's boolean exclusiveMaximum/Minimum: not modelled, so any change fails.
                if old[keyword] != new[keyword]:
                    out.append(Incompatibility(path, "UNCHECKED_KEYWORD_CHANGED", keyword))
            elif keyword not in old:
                out.append(Incompatibility(path, f"{keyword}_ADDED", f"{keyword} {new[keyword]}"))
            elif tighter(new[keyword], old[keyword]):
                out.append(
                    Incompatibility(
                        path, f"{keyword}_CHANGED", f"{keyword} {old[keyword]} -> {new[keyword]}"
                    )
                )
        for keyword in ("pattern", "format"):
            if keyword in new and old.get(keyword) != new[keyword]:
                rule = f"{keyword.upper()}_{'CHANGED' if keyword in old else 'ADDED'}"
                out.append(Incompatibility(path, rule, f"{old.get(keyword)!r} -> {new[keyword]!r}"))
        return out

    def _compare_objects(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[Incompatibility]:
        old_props: Mapping[str, Schema] = old.get("properties") or {}
        new_props: Mapping[str, Schema] = new.get("properties") or {}
        old_extra, new_extra = _content_model(old), _content_model(new)
        old_required = set(old.get("required") or ())
        new_required = set(new.get("required") or ())
        out = []
        for name in sorted(new_props.keys() - old_props.keys()):
            where = f"{path}/properties/{name}"
            if name in new_required:
                out.append(Incompatibility(where, "REQUIRED_PROPERTY_ADDED", "old data lacks it"))
            elif old_extra is True:
                if not _is_any(new_props[name]):
                    out.append(
                        Incompatibility(
                            where,
                            "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                            "old data may hold this name with any value",
                        )
                    )
            elif old_extra is not False:
                for problem in self.compare(old_extra, new_props[name], where):
                    out.append(
                        Incompatibility(
                            where,
                            "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                            str(problem),
                        )
                    )
        for name in sorted(old_props.keys() - new_props.keys()):
            where = f"{path}/properties/{name}"
            if new_extra is False:
                out.append(
                    Incompatibility(
                        where,
                        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                        "old data holds it and the new schema refuses unknown properties",
                    )
                )
            elif new_extra is not True:
                for problem in self.compare(old_props[name], new_extra, where):
                    out.append(
                        Incompatibility(
                            where,
                            "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                            str(problem),
                        )
                    )
        for name in sorted(old_props.keys() & new_props.keys()):
            out += self.compare(old_props[name], new_props[name], f"{path}/properties/{name}")
        for name in sorted((new_required - old_required) & old_props.keys()):
            out.append(
                Incompatibility(
                    f"{path}/required/{name}", "REQUIRED_ATTRIBUTE_ADDED", "old data may lack it"
                )
            )
        out += self._compare_content_models(old_extra, new_extra, path)
        return out

    def _compare_content_models(
        self, old_extra: Schema, new_extra: Schema, path: str
    ) -> list[Incompatibility]:
        where = f"{path}/additionalProperties"
        if new_extra is True or old_extra is False:
            return []
        if new_extra is False:
            return [Incompatibility(where, "ADDITIONAL_PROPERTIES_REMOVED", "content model closed")]
        if old_extra is True:
            return [Incompatibility(where, "ADDITIONAL_PROPERTIES_NARROWED", "was open")]
        return self.compare(old_extra, new_extra, where)

    def _compare_unmodelled(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[Incompatibility]:
        skip = _ANNOTATIONS | _MODELLED | set(_UPPER) | set(_LOWER)
        keywords = sorted((set(old) | set(new)) - skip)
        return [
            Incompatibility(
                path, "UNCHECKED_KEYWORD_CHANGED", f"{k}: the checker does not model this keyword"
            )
            for k in keywords
            if old.get(k) != new.get(k)
        ]
