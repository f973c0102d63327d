"""The broker's JVM: its command line, pid files, liveness checks, stopping it, and formatting
its storage."""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tools.local_kafka.common import LocalKafkaError
from tools.local_kafka.config import SCRAM_MECHANISMS, new_cluster_id
from tools.local_kafka.paths import InstancePaths, tail

HEAP_OPTS = ["-Xms256m", "-Xmx512m"]
JVM_OPTS = [
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]
STOP_GRACE_SECONDS = 30.0


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise LocalKafkaError("java not found (set JAVA_HOME or put Java 17+ on PATH)")
    return java


def java_command(lib: Path, paths: InstancePaths, main_class: str, *args: str) -> list[str]:
    return [
        java_executable(),
        *HEAP_OPTS,
        *JVM_OPTS,
        *shlex.split(os.environ.get("BRIDGE_KAFKA_JAVA_OPTS", "")),
        f"-Dlog4j2.configurationFile={paths.log4j}",
        f"-Dkafka.logs.dir={paths.logs}",
        "-cp",
        f"{lib}/*",
        main_class,
        *args,
    ]


#: The children :func:`spawn_detached` started in this process, by pid, until reaped; kept
#: referenced too, as a broker outlives whoever restarted it.
_spawned: dict[int, subprocess.Popen[bytes]] = {}


def spawn_detached(
    command: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` in ``cwd``, its output appended to ``log`` after a line naming it."""
    with log.open("ab") as out:
        out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n".encode())
        out.flush()
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,  # survives this script and the caller's Ctrl+C
            close_fds=True,
        )
    _spawned[child.pid] = child
    return child


def _proc_stat_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) S ..." and comm may hold spaces/parentheses: split after the last ')'.
    return stat.rsplit(")", 1)[-1].split()[0]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) still answers kill(0); it is not running.
    return _proc_stat_state(pid) != "Z"


def is_our_broker(pid: int, paths: InstancePaths) -> bool:
    """True when pid is alive and is this instance's broker (guards against pid reuse)."""
    if not pid_alive(pid):
        return False
    cmdline_file = Path(f"/proc/{pid}/cmdline")
    if not cmdline_file.parent.exists():
        return True  # no procfs (e.g. macOS): trust the pid file
    try:
        cmdline = cmdline_file.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and str(paths.properties).encode() in cmdline


def read_pid(paths: InstancePaths) -> int | None:
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(paths: InstancePaths) -> int | None:
    pid = read_pid(paths)
    return pid if pid is not None and is_our_broker(pid, paths) else None


def terminate(pid: int, *, grace: float = STOP_GRACE_SECONDS) -> bool:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns True if it had to kill."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        reap(pid)
        if not pid_alive(pid):
            reap(pid)  # it may have died between the two
            return False
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        reap(pid)
        if not pid_alive(pid):
            reap(pid)
            break
        time.sleep(0.1)
    return True


@atexit.register
def reap_spawned() -> None:
    """Poll every child :func:`spawn_detached` started here: one stopped by another process
    (``local-kafka stop``) is a zombie of ours, and its Popen says it runs, until polled."""
    for pid, child in list(_spawned.items()):
        if child.poll() is not None:
            del _spawned[pid]


def reap(pid: int) -> None:
    """Reap pid if it is our own child (only when start launched it in this process)."""
    child = _spawned.get(pid)
    if child is not None:
        # Through its Popen: one reaped behind its back still says it runs, and Python warns
        # "subprocess N is still running" when it is collected.
        if child.poll() is not None:
            del _spawned[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def format_storage(
    lib: Path, paths: InstancePaths, scram_users: list[str], cluster_id: str | None = None
) -> None:
    """Format the node's storage (every node of a cluster with the same ``cluster_id``)."""
    scram = []
    for user in scram_users:
        name, sep, password = user.partition(":")
        if not sep or not name:
            raise LocalKafkaError(f"--scram-user wants USER:PASSWORD, got {user!r}")
        for mechanism in SCRAM_MECHANISMS:
            scram += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    command = java_command(
        lib,
        paths,
        "kafka.tools.StorageTool",
        "format",
        "--cluster-id",
        cluster_id or new_cluster_id(),
        "--config",
        str(paths.properties),
        "--ignore-formatted",
        *scram,
    )
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0 or not paths.meta_properties.is_file():
        raise LocalKafkaError(
            f"formatting the storage failed (exit {result.returncode})",
            log_tail=(result.stdout + result.stderr).strip() + "\n" + tail(paths.server_log),
        )
