"""One registry instance: its state folder, its JVM, and whether it answers."""

from __future__ import annotations

import json
import os
import shlex
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tools.local_kafka.common import EXIT_BUSY, LocalKafkaError
from tools.local_kafka.paths import state_root, tail, write_text_atomic
from tools.local_kafka.probe import port_free
from tools.local_kafka.process import java_executable, pid_alive, spawn_detached, terminate
from tools.local_registry.build import RUNNER_JAR
from tools.local_registry.common import CCOMPAT_PATH, HOST, info

JVM_OPTS = ["-Xms64m", "-Xmx256m", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true"]


@dataclass(frozen=True)
class Instance:
    name: str

    @property
    def root(self) -> Path:
        return state_root(variable="BRIDGE_REGISTRY_STATE", folder="registry") / self.name

    @property
    def log(self) -> Path:
        return self.root / "registry.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "registry.pid"

    @property
    def state_file(self) -> Path:
        return self.root / "instance.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def saved_port(self) -> int | None:
        try:
            port = json.loads(self.state_file.read_text(encoding="utf-8"))["port"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return port if isinstance(port, int) else None

    def url(self, port: int) -> str:
        return f"http://{HOST}:{port}"

    def running_pid(self) -> int | None:
        """The pid of this instance's JVM when it runs (guards against a reused pid)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not pid_alive(pid):
            return None
        cmdline = Path(f"/proc/{pid}/cmdline")
        if not cmdline.parent.exists():
            return pid  # no procfs: trust the pid file
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if self._marker().encode() in args else None

    def _marker(self) -> str:
        return f"-Dfonestorm.local-registry={self.root}"

    def command(self, app: Path) -> list[str]:
        extra = shlex.split(os.environ.get("BRIDGE_REGISTRY_JAVA_OPTS", ""))
        return [java_executable(), *JVM_OPTS, *extra, self._marker(), "-jar", str(app / RUNNER_JAR)]

    def launch(self, app: Path, port: int, timeout: float) -> None:
        """Start the JVM on ``port`` and wait until the Confluent-compatible API answers."""
        if not port_free(port):
            raise LocalKafkaError(f"{HOST}:{port} is already in use", exit_code=EXIT_BUSY)
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.state_file, json.dumps({"port": port}, indent=2) + "\n")
        command = self.command(app)
        # In-memory storage: every start is an empty registry, as tests want.
        env = {**os.environ, "HTTP_PORT": str(port), "QUARKUS_HTTP_HOST": HOST}
        started = time.monotonic()
        child = spawn_detached(command, self.log, self.root, env)
        write_text_atomic(self.pid_file, f"{child.pid}\n")
        info(f"started registry '{self.name}' (pid {child.pid}) on port {port}, waiting...")
        deadline = started + timeout
        while (problem := probe(port)) is not None:
            if child.poll() is not None or time.monotonic() >= deadline:
                why = (
                    f"exited with code {child.returncode}"
                    if child.poll() is not None
                    else f"did not answer within {timeout:g}s ({problem})"
                )
                terminate(child.pid, grace=10)
                self.pid_file.unlink(missing_ok=True)
                raise LocalKafkaError(f"registry {why}", log_tail=tail(self.log))
            time.sleep(0.25)
        info(f"ready in {time.monotonic() - started:.1f}s; log in {self.log}")


def probe(port: int, timeout: float = 3.0) -> str | None:
    """None when the Confluent-compatible subject list answers 200, else why not."""
    url = f"http://{HOST}:{port}{CCOMPAT_PATH}/subjects"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
