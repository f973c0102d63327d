"""The Dockerfile's structure (there is no Docker engine here to build it).

Multi-stage on a base pinned to an exact Python patch release and the digest of its image index
(one ``PYTHON_IMAGE`` build argument), dependencies installed only from the hashed lock files
without resolving anything, a final stage with only the venv, a numeric non-root user matching
the chart's securityContext, the operations endpoints on their own port as in the chart, and the
``fonestorm-bridge`` entrypoint with a subcommand the CLI knows.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from bridge.cli import build_parser
from bridge.settings import HttpSettings, load_settings
from tests.chart.chartlib import SINGLE_PORT, configmap_data
from tests.chart.helmlib import CHART_DIR, REPO_ROOT, Helm
from tools import lockcheck

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
PINNED_BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}$")
BASE_ARG = "PYTHON_IMAGE"
LOCKS = (lockcheck.RUNTIME_LOCK, lockcheck.BUILD_LOCK)
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


def test_base_image_pinned_to_an_exact_version_and_digest(stages: list[Stage]) -> None:
    """Tag and digest: the tag says what it is, the digest makes the build reproducible (a tag
    can be re-pointed)."""
    for stage in stages:
        assert PINNED_BASE.match(stage.base), stage.base
    assert len({stage.base for stage in stages}) == 1, "builder and runtime share one base"


def test_base_image_is_one_build_argument_for_a_digest() -> None:
    """Every stage comes FROM ${PYTHON_IMAGE}, so one --build-arg (or its default) pins all of
    them by digest, and the Dockerfile and README say how to refresh the digest."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    global_args, _ = parse(text)
    assert PINNED_BASE.match(global_args[BASE_ARG]), global_args[BASE_ARG]
    froms = [line for line in _logical_lines(text) if line.upper().startswith("FROM ")]
    assert froms
    for line in froms:
        assert line.split()[1] == f"${{{BASE_ARG}}}", line
    assert "docker buildx imagetools inspect python:3.11" in text
    assert f"--build-arg {BASE_ARG}=python:3.11" in text
    assert "@sha256:<digest>" in text
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "docker buildx imagetools inspect python:3.11" in readme
    assert global_args[BASE_ARG] in readme, "the README names the pinned base"


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


def _env(final: Stage) -> dict[str, str]:
    """The final stage's ENV, as KEY=VALUE pairs."""
    pairs = [shlex.split(args) for args in final.all("ENV")]
    return dict(item.split("=", 1) for words in pairs for item in words)


def test_exposes_the_callback_and_admin_ports(final: Stage) -> None:
    chart_admin = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))["config"][
        "http"
    ]["adminPort"]
    assert final.all("EXPOSE") == [f"{HttpSettings().port} {chart_admin}"]


def test_admin_port_is_the_image_default(
    final: Stage, helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image serves /healthz, /readyz and /metrics on the chart's admin port by default, not
    on the callback port (plain `docker run` too); the chart's single-port layout still turns
    it off on top of the image's environment."""
    env = _env(final)
    for name in list(os.environ):
        if name.startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("BRIDGE_"):
            monkeypatch.setenv(name, value)
    image = load_settings().http
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    assert image.admin_port == values["config"]["http"]["adminPort"] == 9090
    assert image.port == HttpSettings().port
    # `config.http.adminPort: null` in the chart: its ConfigMap overrides the image's value.
    single = helm.template(SINGLE_PORT)
    for name, value in configmap_data(single).items():
        monkeypatch.setenv(name, value)
    assert load_settings().http.admin_port is None


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
    assert {"pyproject.toml", "README.md", "bridge", *LOCKS} <= set(sources)
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore"
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["readme"] in sources
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert package.rstrip("*") in sources, package


def _commands(stage: Stage) -> list[list[str]]:
    """The simple commands of the stage's RUN instructions (split on && and ;), as words."""
    commands: list[list[str]] = []
    for run in stage.all("RUN"):
        for command in re.split(r"&&|;", run):
            if words := shlex.split(command):
                commands.append(words)
    return commands


PIP_OPTION_VALUES = {"-r", "--requirement", "-w", "--wheel-dir", "--only-binary", "-c"}


def _pip_calls(stage: Stage) -> list[tuple[str, list[str]]]:
    """(subcommand, arguments) of the stage's pip runs (pip, /a/venv/bin/pip, python -m pip)."""
    calls: list[tuple[str, list[str]]] = []
    for command in _commands(stage):
        if Path(command[0]).name in {"pip", "pip3"}:
            rest = command[1:]
        elif command[1:3] == ["-m", "pip"]:
            rest = command[3:]
        else:
            continue
        if rest:
            calls.append((rest[0], rest[1:]))
    return calls


def _option_values(args: list[str], options: set[str]) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in options]


def _targets(args: list[str]) -> list[str]:
    """The positional arguments: what pip installs or builds."""
    values = {i + 1 for i, arg in enumerate(args) if arg in PIP_OPTION_VALUES}
    return [arg for i, arg in enumerate(args) if not arg.startswith("-") and i not in values]


def test_builder_installs_the_project(stages: list[Stage]) -> None:
    runs = " ".join(stages[0].all("RUN"))
    assert "python -m venv /opt/venv" in runs
    calls = _pip_calls(stages[0])
    wheels = [args for subcommand, args in calls if subcommand == "wheel"]
    assert wheels, "the builder builds the bridge's wheel"
    for args in wheels:
        assert _targets(args) == ["."]
        assert {"--no-deps", "--no-build-isolation"} <= set(args), "no build requirement fetched"
    installs = [args for subcommand, args in calls if subcommand == "install"]
    assert any(
        "--no-deps" in args and any(t == "." or t.endswith(".whl") for t in _targets(args))
        for args in installs
    ), "the bridge is installed on its own"


def test_builder_installs_only_the_locked_dependencies(stages: list[Stage]) -> None:
    """Nothing resolved at build time: every pip install is --no-deps, and what it installs from
    an index comes from a lock with --require-hashes; both locks are installed."""
    installed: list[str] = []
    for subcommand, args in _pip_calls(stages[0]):
        assert subcommand in {"install", "wheel", "check", "uninstall"}, subcommand
        if subcommand not in {"install", "wheel"}:
            continue
        assert "--no-deps" in args, f"pip {subcommand} resolves dependencies: {args}"
        assert not {"-U", "--upgrade"} & set(args), f"an unpinned upgrade: {args}"
        assert not any(arg.startswith(("-i", "--index-url", "--extra-index-url")) for arg in args)
        locks = _option_values(args, {"-r", "--requirement"})
        if locks:
            assert "--require-hashes" in args, args
            assert _option_values(args, {"--only-binary"}) == [":all:"], "an sdist would build"
            assert _targets(args) == [], "only the lock"
            installed += locks
        else:  # the bridge itself: the build context or the wheel built from it
            assert _targets(args), args
            for target in _targets(args):
                assert target == "." or re.fullmatch(r"dist/[\w*.-]+\.whl", target), target
    assert sorted(installed) == sorted(LOCKS)
    commands = [" ".join(command) for command in _commands(stages[0])]
    assert "pip check" in commands, "the build fails if the lock is incomplete"


def test_the_locks_match_pyproject() -> None:
    """The lock files the image installs are complete and hashed (`make lint` checks this too)."""
    assert lockcheck.check_repository(REPO_ROOT) == []
    for name in LOCKS:
        first = (REPO_ROOT / name).read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# Generated by `make lock`"), first


def test_healthcheck_uses_the_liveness_endpoint(final: Stage) -> None:
    (healthcheck,) = final.all("HEALTHCHECK")
    # The CLI knows which port serves /healthz (BRIDGE_HTTP__ADMIN_PORT when set).
    assert '"fonestorm-bridge", "healthcheck"' in healthcheck
