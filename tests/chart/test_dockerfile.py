"""The Dockerfile's structure (there is no Docker engine here to build it).

Multi-stage on a base pinned to an exact Python patch release, a final stage with only the
venv, a numeric non-root user matching the chart's securityContext, and the
``fonestorm-bridge`` entrypoint with a subcommand the CLI knows.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from bridge.cli import build_parser
from bridge.settings import HttpSettings
from tests.chart.helmlib import CHART_DIR, REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
PINNED_BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|make|build-essential|clang|apt-get|apk|pip)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return lines


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with ARGs substituted in FROM."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], args)
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", base, re.I)
            assert match, line
            stages.append(Stage(match[1], match[2]))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede the first FROM: {line}"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))[1]


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_multi_stage(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    assert stages[0].name == "builder"
    names = [stage.name for stage in stages]
    assert len(set(names)) == len(names)


def test_base_image_pinned_to_an_exact_version(stages: list[Stage]) -> None:
    for stage in stages:
        assert PINNED_BASE.match(stage.base), stage.base
    assert len({stage.base for stage in stages}) == 1, "builder and runtime share one base"


def test_final_stage_runs_as_numeric_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage sets USER"
    user = users[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER {user} must be numeric for runAsNonRoot"
    uid, _, gid = user.partition(":")
    assert int(uid) != 0
    assert gid != "0"
    # USER comes after every RUN, so nothing runs as root afterwards by accident...
    keywords = [kw for kw, _ in final.instructions]
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw == "RUN")
    # ...and matches the user created and the chart's securityContext.
    runs = " ".join(final.all("RUN"))
    assert f"--uid {uid}" in runs
    chart = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    assert chart["podSecurityContext"]["runAsUser"] == int(uid)
    if gid:
        assert chart["podSecurityContext"]["runAsGroup"] == int(gid)


def test_entrypoint_and_cmd(final: Stage) -> None:
    (entrypoint,) = final.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["fonestorm-bridge"], "exec form, so signals reach it"
    (cmd,) = final.all("CMD")
    command = json.loads(cmd)
    build_parser().parse_args(command)  # a subcommand the CLI knows
    assert command == ["serve"]
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "fonestorm-bridge" in scripts["project"]["scripts"]


def test_exposes_the_bridge_port(final: Stage) -> None:
    assert final.all("EXPOSE") == [str(HttpSettings().port)]


def test_python_environment(final: Stage) -> None:
    env = " ".join(final.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    assert "PATH=/opt/venv/bin:$PATH" in env


def test_oci_labels(final: Stage) -> None:
    labels = " ".join(final.all("LABEL"))
    for key in ("title", "description", "version", "licenses", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_final_stage_has_no_build_tools(final: Stage) -> None:
    for keyword, args in final.instructions:
        if keyword == "RUN":
            assert not BUILD_TOOLS.search(args), args
    copies = final.all("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"], "only the venv is copied"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (later patterns win)."""
    candidates = [path, *(str(p) for p in Path(path).parents if str(p) != ".")]
    ignored = False
    for raw in patterns:
        pattern = raw.removeprefix("!").removeprefix("/").rstrip("/")
        globs = (pattern, pattern.removeprefix("**/"))
        if any(fnmatch.fnmatch(c, g) for c in candidates for g in globs):
            ignored = not raw.startswith("!")
    return ignored


def _dockerignore() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_keeps_the_context_small() -> None:
    patterns = _dockerignore()
    for path in (".venv", ".git", ".local", "tests", ".pytest_cache", ".mypy_cache", "bench"):
        assert _ignored(path, patterns), path
    assert _ignored("bridge/__pycache__/app.cpython-311.pyc", patterns)


def test_builder_copies_exist_and_are_in_the_context(stages: list[Stage]) -> None:
    patterns = _dockerignore()
    sources: list[str] = []
    for stage in stages:
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            *srcs, _dest = args.split()
            sources += srcs
    assert {"pyproject.toml", "README.md", "bridge"} <= set(sources)
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore"
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["readme"] in sources
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert package.rstrip("*") in sources, package


def test_builder_installs_the_project(stages: list[Stage]) -> None:
    runs = " ".join(stages[0].all("RUN"))
    assert "python -m venv /opt/venv" in runs
    assert "pip install --compile ." in runs


def test_healthcheck_uses_the_liveness_endpoint(final: Stage) -> None:
    (healthcheck,) = final.all("HEALTHCHECK")
    assert f"127.0.0.1:{HttpSettings().port}/healthz" in healthcheck
