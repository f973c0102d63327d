"""Where things live: the Kafka version, the jar cache, instance state dirs, and file helpers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.local_kafka.common import LocalKafkaError

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "scripts" / "kafka-pom.xml"
LOG_TAIL_LINES = 60


def kafka_version() -> str:
    override = os.environ.get("BRIDGE_KAFKA_VERSION", "").strip()
    if override:
        return override
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", POM.read_text())
    if match is None:
        raise LocalKafkaError(f"no <kafka.version> property in {POM}")
    return match.group(1)


def cache_dir(version: str, *, variable: str = "BRIDGE_KAFKA_CACHE", name: str = "kafka") -> Path:
    """Where ``name`` ``version`` is cached: ``$variable``, else under the user's cache."""
    override = os.environ.get(variable, "").strip()
    if override:
        return Path(override).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "fonestorm-bridge" / f"{name}-{version}"


def state_root(*, variable: str = "BRIDGE_KAFKA_STATE", folder: str = "kafka") -> Path:
    """Where instances keep their state, one folder each: ``$variable``, else
    ``<repo>/.local/<folder>``."""
    override = os.environ.get(variable, "").strip()
    root = Path(override).expanduser() if override else REPO_ROOT / ".local" / folder
    return root.resolve()


@dataclass(frozen=True)
class InstancePaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.logs / "stdout.log"

    @property
    def properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.root / "log4j2.properties"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"

    @property
    def state_file(self) -> Path:
        return self.root / "instance.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def meta_properties(self) -> Path:
        return self.data / "meta.properties"

    def node(self, node_id: int, brokers: int) -> InstancePaths:
        """Files of node ``node_id``: the instance's own for a single node, else a subfolder."""
        return self if brokers == 1 else InstancePaths(self.root / f"node-{node_id}")

    @property
    def tls(self) -> Path:
        """TLS material of the SSL listener (see ensure_tls)."""
        return self.root / "tls"

    @property
    def ca_cert(self) -> Path:
        return self.tls / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.tls / "ca.key"

    @property
    def broker_keystore(self) -> Path:
        """PEM key store: the broker's PKCS#8 key, its certificate, then the CA certificate."""
        return self.tls / "broker-keystore.pem"

    @property
    def client_cert(self) -> Path:
        return self.tls / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.tls / "client.key"

    @property
    def tls_files(self) -> tuple[Path, ...]:
        return (self.ca_cert, self.ca_key, self.broker_keystore, self.client_cert, self.client_key)


def instance_paths(name: str) -> InstancePaths:
    return InstancePaths(state_root() / name)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock: serialises concurrent start/stop/fetch on the same files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def logs_tail(paths: InstancePaths) -> str:
    parts = []
    for log in (paths.server_log, paths.stdout_log):
        text = tail(log)
        if text.strip():
            parts.append(f"----- tail of {log} -----\n{text}")
    return "\n".join(parts)
