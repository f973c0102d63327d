"""The broker's classpath: Kafka jars fetched once with Maven into the shared cache."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from tools.local_kafka.common import LocalKafkaError, info
from tools.local_kafka.paths import LOG_TAIL_LINES, POM, cache_dir, file_lock, write_text_atomic


def _fetch_fingerprint(version: str) -> str:
    digest = hashlib.sha256(POM.read_bytes())
    digest.update(version.encode())
    return digest.hexdigest()


def _lib_complete(cache: Path, version: str) -> bool:
    marker = cache / "lib.complete.json"
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if recorded.get("fingerprint") != _fetch_fingerprint(version):
        return False
    jars = recorded.get("jars") or []
    return bool(jars) and all((cache / "lib" / jar).is_file() for jar in jars)


def maven(purpose: str) -> str:
    """The Maven executable, ``$MVN`` or ``mvn`` on PATH; ``purpose``: what it is needed for."""
    mvn = os.environ.get("MVN") or shutil.which("mvn")
    if not mvn:
        raise LocalKafkaError(f"Maven (mvn) not found on PATH; it {purpose}")
    return mvn


def run_maven(
    command: list[str], *, made: Path, staging: Path, failure: str, cwd: Path | None = None
) -> None:
    """Run Maven; unless it succeeds and ``made`` exists, remove ``staging`` and raise
    ``failure`` with the exit code, the command and the tail of its output."""
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0 or not made.is_file():
        output = "\n".join((result.stdout + result.stderr).splitlines()[-LOG_TAIL_LINES:])
        shutil.rmtree(staging, ignore_errors=True)
        raise LocalKafkaError(
            f"{failure} (exit {result.returncode}): {shlex.join(command)}", log_tail=output
        )


def ensure_jars(version: str) -> Path:
    """Return the lib folder holding the broker classpath, fetching it with Maven once."""
    cache = cache_dir(version)
    if _lib_complete(cache, version):
        return cache / "lib"
    with file_lock(cache / ".fetch.lock"):
        if _lib_complete(cache, version):  # another process fetched while we waited
            return cache / "lib"
        mvn = maven("fetches the Kafka jars")
        staging = cache / f"lib.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        command = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-Dkafka.version={version}",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        info(f"fetching Apache Kafka {version} jars with Maven into {cache} (first run only)")
        started = time.monotonic()
        run_maven(
            command,
            made=staging / f"kafka_2.13-{version}.jar",
            staging=staging,
            failure=f"Maven could not fetch Kafka {version}",
        )
        lib = cache / "lib"
        shutil.rmtree(lib, ignore_errors=True)
        staging.replace(lib)
        jars = sorted(p.name for p in lib.glob("*.jar"))
        marker = {"version": version, "fingerprint": _fetch_fingerprint(version), "jars": jars}
        write_text_atomic(cache / "lib.complete.json", json.dumps(marker, indent=2) + "\n")
        info(f"fetched {len(jars)} jars in {time.monotonic() - started:.1f}s")
        return lib
