"""Check that the hashed lock files still match pyproject.toml (offline, for `make lint`).

    python -m tools.lockcheck [--root DIR]       # exit 1 and one line per problem on stderr
    python -m tools.lockcheck --build-requires   # print [build-system] requires (`make lock`)

requirements.lock pins the image's runtime dependencies ([project] dependencies and what they
pull in) and requirements-build.lock the [build-system] requires that build the bridge's wheel;
the Dockerfile installs both with `pip install --require-hashes --no-deps`, so nothing is
resolved at image build time. For each pair this checks that:

* every requirement of pyproject.toml that applies to the image (Python 3.11, Linux x86_64) has
  a lock entry, pinned with `==` to a version its specifier allows;
* every lock entry is pinned with `==` and carries at least one `--hash=sha256:` digest;
* no lock entry is a leftover: when the lock has `# via` annotations (uv and pip-compile write
  them), every entry must be a requirement of pyproject.toml or pulled in by one that is.

Whether the pins form a complete, consistent set (the transitive dependencies) needs package
metadata, so the image build checks it with `pip check`. Unlike the rest of tools/ this needs
the `packaging` library: run it with the venv's Python.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = "requirements.lock"
BUILD_LOCK = "requirements-build.lock"

# The image: the Dockerfile's python:3.11-slim-bookworm base on linux/amd64.
TARGET_ENVIRONMENT: dict[str, str] = {
    "implementation_name": "cpython",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.11.0",
    "python_version": "3.11",
    "sys_platform": "linux",
    "extra": "",
}

_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")
_ANY_HASH = re.compile(r"--hash=\S*")


@dataclass
class LockEntry:
    """One requirement line of a lock file (continuations joined) and its `# via` sources."""

    line: int
    requirement: Requirement
    hashes: list[str]
    via: list[str] = field(default_factory=list)

    @property
    def name(self) -> NormalizedName:
        return canonicalize_name(self.requirement.name)

    @property
    def pin(self) -> Version | None:
        """The version of an exact `==` pin (no wildcard), else None."""
        specs = list(self.requirement.specifier)
        if len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version:
            return Version(specs[0].version)
        return None


@dataclass
class Lock:
    entries: dict[str, LockEntry]
    errors: list[str]
    annotated: bool  # whether any entry has `# via` sources


def _strip_comment(line: str) -> str:
    # pip: a comment starts at a `#` at the start of a line or after whitespace.
    match = re.search(r"(^|\s)#", line)
    return line[: match.start()] if match else line


def _via(comment: str, pending: list[str] | None) -> list[str] | None:
    """Collect the sources of `# via x` / `# via` + `#   x` annotations; None outside one."""
    text = comment.lstrip("#").strip()
    if match := re.fullmatch(r"via(?:\s+(.+))?", text):
        return [match[1]] if match[1] else []
    if pending is not None and text and comment.startswith("#   "):
        return [*pending, text]
    return None


def parse_lock(text: str, *, label: str = "lock") -> Lock:
    """Parse a pip requirements file written by `uv pip compile` or `pip-compile`."""
    entries: dict[str, LockEntry] = {}
    errors: list[str] = []
    annotated = False
    current: LockEntry | None = None
    via: list[str] | None = None
    logical = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not logical and stripped.startswith("#"):
            via = _via(stripped, via)
            if current is not None and via is not None:
                current.via = via
                annotated = True
            continue
        body = _strip_comment(raw).strip()
        if not logical:
            start = number
        if body.endswith("\\"):
            logical += body[:-1] + " "
            continue
        logical = (logical + body).strip()
        if not logical:
            continue
        current, via = _entry(logical, start, label, errors), None
        logical = ""
        if current is None:
            continue
        if current.name in entries:
            errors.append(f"{label}:{start}: {current.name} is locked twice")
        entries[current.name] = current
    if logical:
        errors.append(f"{label}: ends inside a continued line")
    return Lock(entries, errors, annotated)


def _entry(logical: str, line: int, label: str, errors: list[str]) -> LockEntry | None:
    where = f"{label}:{line}"
    if logical.startswith("-"):
        errors.append(f"{where}: options are not allowed in a lock (indexes, -e, -r): {logical}")
        return None
    spec = _ANY_HASH.sub("", logical).strip()
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as error:
        errors.append(f"{where}: not a requirement: {spec} ({error})")
        return None
    entry = LockEntry(line, requirement, _HASH.findall(logical))
    if requirement.url:
        errors.append(f"{where}: {entry.name} comes from a URL, not a pinned index release")
    elif entry.pin is None:
        errors.append(f"{where}: {entry.name} is not pinned with == ({requirement.specifier})")
    if not entry.hashes:
        errors.append(f"{where}: {entry.name} has no --hash=sha256: digest")
    return entry


def applies(requirement: Requirement, environment: Mapping[str, str] | None = None) -> bool:
    """Whether the requirement's marker holds on the image (no marker: always)."""
    if requirement.marker is None:
        return True
    return requirement.marker.evaluate(dict(environment or TARGET_ENVIRONMENT))


def check(requirements: Iterable[str], lock: Lock, *, label: str = "lock") -> list[str]:
    """Every problem of ``lock`` against the direct ``requirements`` (PEP 508 strings)."""
    errors = list(lock.errors)
    direct: set[NormalizedName] = set()
    for raw in requirements:
        try:
            requirement = Requirement(raw)
        except InvalidRequirement as error:
            errors.append(f"pyproject.toml: not a requirement: {raw} ({error})")
            continue
        if not applies(requirement):
            continue
        name = canonicalize_name(requirement.name)
        direct.add(name)
        entry = lock.entries.get(name)
        if entry is None or not applies(entry.requirement):
            errors.append(f"{label}: {requirement} is not locked (run `make lock`)")
            continue
        pin = entry.pin
        if pin is not None and not requirement.specifier.contains(pin, prereleases=True):
            errors.append(
                f"{label}:{entry.line}: {name}=={pin} does not satisfy {requirement} "
                "(run `make lock`)"
            )
    if lock.annotated:
        errors += _leftovers(lock, direct, label)
    return errors


def _leftovers(lock: Lock, direct: set[NormalizedName], label: str) -> list[str]:
    """Entries that no direct requirement pulls in, going by the `# via` annotations."""
    needed = set(direct) | {name for name, entry in lock.entries.items() if not entry.via}
    changed = True
    while changed:
        changed = False
        for name, entry in lock.entries.items():
            parents = {canonicalize_name(source) for source in entry.via}
            if name not in needed and parents & needed:
                needed.add(name)
                changed = True
    return [
        f"{label}:{entry.line}: {name} is locked but nothing in pyproject.toml needs it any more "
        "(run `make lock`)"
        for name, entry in lock.entries.items()
        if name not in needed
    ]


def project_requirements(pyproject: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """The runtime ([project] dependencies) and build ([build-system] requires) requirements."""
    return (
        _strings(pyproject, "project", "dependencies"),
        _strings(pyproject, "build-system", "requires"),
    )


def _strings(pyproject: Mapping[str, object], table: str, key: str) -> list[str]:
    section = pyproject.get(table, {})
    values = section.get(key, []) if isinstance(section, dict) else None
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise TypeError(f"pyproject.toml: [{table}] {key} is not a list of strings")
    return list(values)


def check_repository(root: Path) -> list[str]:
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    runtime, build = project_requirements(pyproject)
    errors: list[str] = []
    for filename, requirements in ((RUNTIME_LOCK, runtime), (BUILD_LOCK, build)):
        path = root / filename
        if not path.is_file():
            errors.append(f"{filename}: missing (run `make lock`)")
            continue
        lock = parse_lock(path.read_text(encoding="utf-8"), label=filename)
        errors += check(requirements, lock, label=filename)
    return errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.lockcheck", description=__doc__)
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository root")
    parser.add_argument(
        "--build-requires",
        action="store_true",
        help="print the [build-system] requires of pyproject.toml, one a line, and exit",
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    if args.build_requires:
        pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        print("\n".join(project_requirements(pyproject)[1]))
        return 0
    errors = check_repository(root)
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
