"""JSON Schema files of the published models, kept in ``schemas/`` and checked against the code."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.contracts.base import VersionedEvent
from bridge.contracts.calls import CallEvent, CallPlaced
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult
from bridge.contracts.dead_letters import DeadLetter

#: Every published model, in the order ``schemas export`` writes them.
PUBLISHED_MODELS: list[type[VersionedEvent]] = [
    CallEvent,
    DeadLetter,
    PlaceCallCommand,
    PlaceCallResult,
    CallPlaced,
]

#: Default location: ``schemas/`` at the repository root.
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "schemas"


def render_all() -> dict[str, str]:
    """File name → JSON text of every published schema."""
    return {
        model.schema_file(): json.dumps(model.json_schema(), indent=2, sort_keys=True) + "\n"
        for model in PUBLISHED_MODELS
    }


def export(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write every schema file; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = DEFAULT_DIR) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    out = []
    for name, text in render_all().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out
