"""A real Jaeger (v2, in-memory storage) that receives OTLP from the bridge in the tests.

A plugin (``pytest_plugins`` in ``tests/conftest.py``): fixture ``jaeger``. The binary is built
once by ``scripts/jaeger-tools install`` (through the Go module proxy, minutes the first time,
then cached under ~/.cache/fonestorm-bridge), when the first test that needs it starts: those
tests run last and allow for the build in their timeout. ``BRIDGE_JAEGER=/path/to/jaeger``
uses another binary.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO_ROOT
from tests.support.ports import free_port
from tests.support.processes import stop_sync

JAEGER_TOOLS = REPO_ROOT / "scripts" / "jaeger-tools"
#: Timeout of a test that uses the ``jaeger`` fixture: room for a first build (7.5 min here).
WITH_BUILD_TIMEOUT = 1800
_binary: dict[str, str] = {}

_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{grpc}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def install_jaeger() -> str:
    """Path of the Jaeger binary, building it first if needed."""
    if os.environ.get("BRIDGE_JAEGER"):
        return os.environ["BRIDGE_JAEGER"]
    done = subprocess.run(
        [str(JAEGER_TOOLS), "install"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=WITH_BUILD_TIMEOUT - 60,
    )
    return done.stdout.strip().splitlines()[-1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that need Jaeger last: a first build (minutes) then overlaps the rest.

    ``.ci/run`` starts ``scripts/jaeger-tools install`` in the background (at the lowest CPU
    priority) before anything else; the fixture waits for it (the script's lock) only when the
    other tests are done.
    """
    items.sort(key=lambda item: "jaeger" in getattr(item, "fixturenames", ()))


@dataclass(frozen=True)
class Jaeger:
    """A running Jaeger: where to send OTLP, and its query API."""

    otlp_endpoint: str
    query_url: str

    def get(self, path: str) -> Any:
        """GET ``path`` of the query API, decoded JSON."""
        with urllib.request.urlopen(f"{self.query_url}{path}", timeout=5) as response:  # noqa: S310 - local http
            return json.load(response)

    def trace(self, trace_id: str, *, timeout: float = 20.0) -> dict[str, Any]:
        """The trace ``trace_id`` (32 hex digits) once Jaeger has it (spans arrive in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = self.get(f"/api/traces/{trace_id}")["data"]
                if data:
                    found: dict[str, Any] = data[0]
                    return found
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"trace {trace_id} not in Jaeger after {timeout}s")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """Jaeger on free ports, in-memory storage, for the whole session."""
    if "path" not in _binary:
        try:
            _binary["path"] = install_jaeger()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            pytest.fail(f"scripts/jaeger-tools install failed: {exc}")
    otlp, query, grpc = free_port(), free_port(), free_port()
    folder: Path = tmp_path_factory.mktemp("jaeger")
    config = folder / "config.yaml"
    config.write_text(_CONFIG.format(otlp=otlp, query=query, grpc=grpc))
    log = (folder / "jaeger.log").open("wb")
    proc = subprocess.Popen(
        [_binary["path"], "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    running = Jaeger(f"http://127.0.0.1:{otlp}", f"http://127.0.0.1:{query}")
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"jaeger exited at start: {(folder / 'jaeger.log').read_text()[-2000:]}"
                )
            try:
                running.get("/api/services")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("jaeger did not answer within 30 s")
                time.sleep(0.1)
        yield running
    finally:
        stop_sync(proc, grace=10)
        log.close()
