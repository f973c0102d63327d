"""Apicurio's own Java serdes as subprocesses: the interop proof of registry mode.

The Maven project tests/java/serdes holds two programs (see their class docs):
``SerdesConsumer`` reads records with ``JsonSchemaKafkaDeserializer`` (schema id in a record
header) and prints one JSON line per record; ``SerdesProducer`` writes one value with
``JsonSchemaKafkaSerializer`` in the Confluent wire format. It is built once per machine with
Maven (Maven Central only) into ``~/.cache/fonestorm-bridge/java-serdes-<fingerprint>``
(``BRIDGE_JAVA_SERDES_CACHE`` overrides the parent folder); later runs are offline.

A plugin (``pytest_plugins`` in ``tests/conftest.py``): the session fixture ``java_serdes``.
``python -m tests.support.java_serdes`` only builds (a CI cache step) and prints the classpath.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO_ROOT
from tools.local_kafka.paths import file_lock, write_text_atomic

PROJECT = REPO_ROOT / "tests" / "java" / "serdes"
PACKAGE = "dev.fonestorm.serdes"
#: Seconds a program may take beyond its own timeout: JVM start and client shutdown.
JVM_SLACK = 30.0
_TAIL_LINES = 40


class JavaSerdesError(RuntimeError):
    """A build or a run of the Java programs failed; the message ends with their output."""


def _project_files() -> list[Path]:
    return sorted(
        p
        for p in PROJECT.rglob("*")
        if p.is_file() and "target" not in p.relative_to(PROJECT).parts
    )


def fingerprint() -> str:
    """Changes whenever the Maven project does, so an edit builds a new cache folder."""
    digest = hashlib.sha256()
    for path in _project_files():
        digest.update(str(path.relative_to(PROJECT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where this version of the project is built: one folder per fingerprint, so worktrees
    on different versions do not rebuild each other's."""
    override = os.environ.get("BRIDGE_JAVA_SERDES_CACHE", "").strip()
    if override:
        base = Path(override).expanduser()
    else:
        home = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
        base = Path(home).expanduser() / "fonestorm-bridge"
    return base.resolve() / f"java-serdes-{fingerprint()[:16]}"


def _complete(cache: Path) -> bool:
    return (cache / "complete").is_file() and (cache / "serdes.jar").is_file()


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-_TAIL_LINES:])


def ensure_built() -> str:
    """The programs' Java classpath, building them with Maven on the first call per machine.

    Parallel test processes wait on a file lock for the one that builds.
    """
    cache = cache_dir()
    if not _complete(cache):
        with file_lock(cache.parent / f".{cache.name}.lock"):
            if not _complete(cache):  # another process may have built it while we waited
                _build(cache)
    return f"{cache / 'serdes.jar'}{os.pathsep}{cache / 'lib' / '*'}"


def _build(cache: Path) -> None:
    mvn = os.environ.get("MVN") or shutil.which("mvn")
    if not mvn:
        raise JavaSerdesError("Maven (mvn) not found on PATH; it builds tests/java/serdes")
    # A copy keeps target/ out of the worktree and away from a concurrent build.
    staging = cache.parent / f"{cache.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(PROJECT, staging, ignore=shutil.ignore_patterns("target"))
    command = [mvn, "-B", "-q", "-Dstyle.color=never", "package"]
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=staging, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    target = staging / "target"
    if result.returncode != 0 or not (target / "serdes.jar").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        raise JavaSerdesError(
            f"mvn package of {PROJECT} failed (exit {result.returncode}):\n"
            + _tail(result.stdout + result.stderr)
        )
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    (target / "serdes.jar").replace(cache / "serdes.jar")
    (target / "lib").replace(cache / "lib")
    shutil.rmtree(staging, ignore_errors=True)
    write_text_atomic(cache / "complete", f"built in {time.monotonic() - started:.1f}s\n")


@dataclass(frozen=True)
class ConsumedRecord:
    """One line of SerdesConsumer: a record and what Apicurio's deserializer made of it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    header_ids: dict[str, Any]
    """The record's ``apicurio.*`` headers; id headers decoded as 8-byte big-endian longs."""
    resolved: dict[str, Any] | None
    """The schema the deserializer resolved: ``contentId``, ``globalId`` (None when it
    resolved by the other id) and the schema's ``$id``."""
    valid: bool
    value: Any
    """The deserialized value (JSON), None when invalid."""
    error: str | None
    """Why the deserializer refused the record (e.g. ``ValidationException: ...``)."""


@dataclass(frozen=True)
class ProducedRecord:
    """Where SerdesProducer's record landed."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class JavaSerdes:
    """Runs the built programs; ``classpath`` is :func:`ensure_built`'s."""

    classpath: str

    async def _run(
        self, main: str, args: Sequence[str], timeout: float, stdin: bytes | None = None
    ) -> tuple[int, str, str]:
        java_home = os.environ.get("JAVA_HOME", "").strip()
        java = str(Path(java_home) / "bin" / "java") if java_home else "java"
        proc = await asyncio.create_subprocess_exec(
            java, "-Xmx256m", "-cp", self.classpath, f"{PACKAGE}.{main}", *args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            raise JavaSerdesError(
                f"{main} still running after {timeout:g}s; killed. stderr:\n"
                + _tail(err.decode(errors="replace"))
            ) from None
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode(errors="replace")

    async def consume(
        self,
        bootstrap: str,
        topics: str | Sequence[str],
        registry_url: str,
        count: int,
        timeout: float = 60.0,
    ) -> list[ConsumedRecord]:
        """Read ``count`` records from the beginning of ``topics`` with Apicurio's
        deserializer; raises :class:`JavaSerdesError` if fewer arrive within ``timeout``."""
        names = [topics] if isinstance(topics, str) else list(topics)
        args = ["--bootstrap", bootstrap, "--registry", registry_url, "--count", str(count)]
        args += ["--timeout", str(timeout)]
        for name in names:
            args += ["--topic", name]
        code, out, err = await self._run("SerdesConsumer", args, timeout + JVM_SLACK)
        records = [_consumed(json.loads(line)) for line in out.splitlines() if line.strip()]
        if code != 0:
            raise JavaSerdesError(
                f"SerdesConsumer exited {code} after {len(records)} of {count} records:\n"
                + _tail(err)
            )
        return records

    async def produce(
        self,
        bootstrap: str,
        topic: str,
        registry_url: str,
        subject: str,
        value: Mapping[str, Any] | bytes,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        group: str | None = None,
        timeout: float = 60.0,
    ) -> ProducedRecord:
        """Send ``value`` with Apicurio's serializer, framed with the content id of the latest
        version of ``subject`` (already registered, e.g. through the ccompat API)."""
        args = ["--bootstrap", bootstrap, "--topic", topic, "--registry", registry_url]
        args += ["--subject", subject, "--value", "-"]
        if key is not None:
            args += ["--key", key]
        if group is not None:
            args += ["--group", group]
        for name, text in (headers or {}).items():
            args += ["--header", f"{name}={text}"]
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        code, out, err = await self._run("SerdesProducer", args, timeout, stdin=body)
        if code != 0:
            raise JavaSerdesError(f"SerdesProducer exited {code}:\n{_tail(err)}")
        sent = json.loads(out.strip().splitlines()[-1])
        return ProducedRecord(sent["topic"], sent["partition"], sent["offset"])


def _consumed(line: dict[str, Any]) -> ConsumedRecord:
    resolved = line.get("resolved")
    return ConsumedRecord(
        topic=line["topic"],
        partition=line["partition"],
        offset=line["offset"],
        key=line.get("key"),
        header_ids=line.get("header_ids", {}),
        resolved=resolved,
        valid=line["valid"],
        value=line.get("value"),
        error=line.get("error"),
    )


@pytest.fixture(scope="session")
def java_serdes() -> JavaSerdes:
    """Apicurio's Java serdes, built once per machine (a cold build takes about a minute)."""
    try:
        return JavaSerdes(ensure_built())
    except JavaSerdesError as exc:
        pytest.fail(str(exc), pytrace=False)


if __name__ == "__main__":
    try:
        print(ensure_built())
    except JavaSerdesError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
