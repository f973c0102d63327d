"""JSON Schema files of the published models, kept in ``schemas/`` and checked against the code
and against their released versions in ``schemas/released/``."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.contracts.base import VersionedEvent
from bridge.contracts.calls import CallEvent, CallPlaced
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult
from bridge.contracts.compat import Incompatibility, backward_incompatibilities
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


def released_dir(directory: Path) -> Path:
    """Where the released versions of ``directory``'s schemas are kept: its ``released/``."""
    return directory / "released"


def release(directory: Path = DEFAULT_DIR, released: Path | None = None) -> list[Path]:
    """Record every current schema file as released (the baseline ``incompatible`` checks)."""
    target = released or released_dir(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in render_all():
        path = target / name
        path.write_text((directory / name).read_text(encoding="utf-8"), encoding="utf-8")
        written.append(path)
    return written


def incompatible(
    directory: Path = DEFAULT_DIR, released: Path | None = None
) -> dict[str, list[Incompatibility]]:
    """File name → why it cannot read data written with its released version (BACKWARD).

    A schema is compared with the released file of the same name and version only: a breaking
    change ships as a new version (a new file, model and type), which has no released file yet.
    """
    source = released or released_dir(directory)
    out = {}
    for name in render_all():
        current, baseline = directory / name, source / name
        if not current.exists() or not baseline.exists():
            continue
        problems = backward_incompatibilities(
            json.loads(baseline.read_text(encoding="utf-8")),
            json.loads(current.read_text(encoding="utf-8")),
        )
        if problems:
            out[name] = problems
    return out
