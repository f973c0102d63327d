"""The registry's runnable jar, built once with Maven from scripts/apicurio-registry/ and cached."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

from tools.local_kafka.common import LocalKafkaError
from tools.local_kafka.jars import maven, run_maven
from tools.local_kafka.paths import REPO_ROOT, cache_dir, file_lock, write_text_atomic
from tools.local_registry.common import info

PROJECT = REPO_ROOT / "scripts" / "apicurio-registry"
POM = PROJECT / "pom.xml"
RUNNER_JAR = "apicurio-registry-runner-1.0-runner.jar"


def registry_version() -> str:
    match = re.search(r"<apicurio\.version>\s*([^<\s]+)\s*</apicurio\.version>", POM.read_text())
    if match is None:
        raise LocalKafkaError(f"no <apicurio.version> property in {POM}")
    return match.group(1)


def _project_files() -> list[Path]:
    return sorted(p for p in PROJECT.rglob("*") if p.is_file())


def _fingerprint() -> str:
    """Changes whenever the Maven project does, so an edited pom rebuilds the cache."""
    digest = hashlib.sha256()
    for path in _project_files():
        digest.update(str(path.relative_to(PROJECT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _build_complete(cache: Path) -> bool:
    try:
        recorded = json.loads((cache / "app.complete.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        recorded.get("fingerprint") == _fingerprint()
        and (cache / "app" / RUNNER_JAR).is_file()
        and (cache / "app" / "lib").is_dir()
    )


def ensure_build() -> Path:
    """Return the folder holding the runner jar and its lib/, building it with Maven once."""
    version = registry_version()
    cache = cache_dir(version, variable="BRIDGE_REGISTRY_CACHE", name="apicurio-registry")
    if _build_complete(cache):
        return cache / "app"
    with file_lock(cache / ".build.lock"):
        if _build_complete(cache):  # another process built it while we waited
            return cache / "app"
        mvn = maven("builds the registry")
        staging = cache / f"build.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(PROJECT, staging)
        command = [mvn, "-B", "-q", "-Dstyle.color=never", "package", "-DskipTests"]
        info(f"building Apicurio Registry {version} with Maven into {cache} (first run only)")
        started = time.monotonic()
        target = staging / "target"
        run_maven(
            command,
            made=target / RUNNER_JAR,
            staging=staging,
            failure=f"Maven could not build Apicurio Registry {version} in a copy of {PROJECT}",
            cwd=staging,
        )
        app = cache / "app"
        shutil.rmtree(app, ignore_errors=True)
        app.mkdir(parents=True)
        (target / RUNNER_JAR).replace(app / RUNNER_JAR)
        (target / "lib").replace(app / "lib")
        shutil.rmtree(staging, ignore_errors=True)
        marker = {"version": version, "fingerprint": _fingerprint()}
        write_text_atomic(cache / "app.complete.json", json.dumps(marker, indent=2) + "\n")
        info(f"built in {time.monotonic() - started:.1f}s")
        return app
