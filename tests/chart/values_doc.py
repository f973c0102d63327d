"""The chart README's values table, made from values.yaml and its ``# --`` comments.

``python -m tests.chart.values_doc`` rewrites the table in helm/fonestorm-bridge/README.md
(between the ``<!-- values:start -->`` / ``<!-- values:end -->`` markers); a chart test fails
when the README is stale.

A key documented with a ``# --`` comment is one row: its default is the whole value below it
(``resources``, ``topologySpreadConstraints``...). Other comments only head sections.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parent.parent.parent / "helm" / "fonestorm-bridge"
VALUES = CHART_DIR / "values.yaml"
README = CHART_DIR / "README.md"
START, END = "<!-- values:start -->", "<!-- values:end -->"
KEY = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):")


def value_lines(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, dotted key path, comment lines just above) of every mapping key."""
    lines = text.splitlines()
    stack: list[tuple[int, str]] = []
    list_indent: int | None = None
    for number, line in enumerate(lines, 1):
        if re.match(r"^\s*- ", line):
            indent = len(line) - len(line.lstrip())
            list_indent = indent if list_indent is None else min(list_indent, indent)
            continue
        match = KEY.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        if list_indent is not None and indent > list_indent:
            continue  # a key inside a list item: data of the documented value above
        list_indent = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        comments: list[str] = []
        above = number - 2
        while above >= 0 and lines[above].strip().startswith("#"):
            comments.insert(0, lines[above].strip())
            above -= 1
        yield number, ".".join(key for _, key in stack), comments


def documented_values(text: str) -> Iterator[tuple[str, str]]:
    """(path, description) of every key documented with a ``# --`` comment."""
    for _, path, comments in value_lines(text):
        start = next((i for i, c in enumerate(comments) if c.startswith("# --")), None)
        if start is None:
            continue
        parts = [comments[start].removeprefix("# --").strip()]
        parts += [c.removeprefix("#").strip() for c in comments[start + 1 :]]
        yield path, " ".join(parts)


def lookup(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for key in path.split("."):
        node = node[key]
    return node


def table() -> str:
    text = VALUES.read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    rows = ["| Key | Default | Description |", "| --- | --- | --- |"]
    for path, description in documented_values(text):
        default = json.dumps(lookup(values, path), ensure_ascii=False)
        default = default.replace("|", "\\|")
        text = description.replace("|", "\\|")
        rows.append(f"| `{path}` | `{default}` | {text} |")
    return "\n".join(rows)


def render_readme(readme: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), flags=re.S)
    return pattern.sub(lambda _: f"{START}\n{table()}\n{END}", readme)


if __name__ == "__main__":
    README.write_text(render_readme(README.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"updated {README}")
