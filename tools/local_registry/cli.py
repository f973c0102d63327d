"""Run Apicurio Registry 2.4.2 (a real Confluent-compatible schema registry) on 127.0.0.1.

    scripts/local-registry start [--name NAME] [--port 8081] [--timeout 120]
    scripts/local-registry status [--name NAME]
    scripts/local-registry stop [--name NAME]
    scripts/local-registry build        # only build the registry (e.g. a CI cache step)

Apicurio publishes no standalone download these machines can fetch, so the runnable Quarkus app
is rebuilt from Maven Central jars by the Maven project in scripts/apicurio-registry/ (about 3
minutes the first time), cached, and run as a detached `java -jar` with in-memory storage: every
start is an empty registry. `start` returns once `GET /apis/ccompat/v7/subjects` answers 200 and
prints the registry's base URL as the last line of stdout; everything else goes to stderr. The
Confluent-compatible API is at <url>/apis/ccompat/v7, Apicurio's own at <url>/apis/registry/v2.

Needs only Python 3 (stdlib), Java 17+ and Maven 3.

Environment:
    BRIDGE_REGISTRY_CACHE      build cache
                               (default ~/.cache/fonestorm-bridge/apicurio-registry-<version>)
    BRIDGE_REGISTRY_STATE      state root, one folder per instance (default <repo>/.local/registry)
    BRIDGE_REGISTRY_JAVA_OPTS  extra JVM options (appended)
    JAVA_HOME                  java is $JAVA_HOME/bin/java when set, else `java` on PATH
    MVN                        Maven executable (default `mvn` on PATH)
"""

from __future__ import annotations

import argparse
import time

from tools.local_kafka.common import (
    EXIT_STOPPED,
    EXIT_UNRESPONSIVE,
    LocalKafkaError,
    instance_options,
    run_command,
)
from tools.local_kafka.paths import file_lock
from tools.local_kafka.process import terminate
from tools.local_registry.build import ensure_build
from tools.local_registry.common import DEFAULT_PORT, PROG, info
from tools.local_registry.instance import Instance, probe


def cmd_start(args: argparse.Namespace) -> int:
    instance = Instance(args.name)
    app = ensure_build()  # outside the instance lock: it has its own
    with file_lock(instance.lock_file):
        pid = instance.running_pid()
        saved = instance.saved_port()
        port = args.port if args.port is not None else (saved or DEFAULT_PORT)
        if pid is not None:
            if saved is not None and saved != port:
                raise LocalKafkaError(
                    f"instance '{args.name}' already runs on port {saved}; stop it first"
                )
            problem = probe(port)
            if problem:
                raise LocalKafkaError(
                    f"instance '{args.name}' (pid {pid}) is unresponsive: {problem}"
                )
            info(f"instance '{args.name}' already running (pid {pid})")
        else:
            instance.pid_file.unlink(missing_ok=True)
            instance.launch(app, port, args.timeout)
    print(instance.url(port), flush=True)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    instance = Instance(args.name)
    if not instance.root.is_dir():
        info(f"instance '{args.name}' stopped (never started)")
        return 0
    with file_lock(instance.lock_file):
        pid = instance.running_pid()
        if pid is None:
            info(f"instance '{args.name}' already stopped")
        else:
            started = time.monotonic()
            how = "killed after SIGTERM timeout" if terminate(pid) else "stopped"
            info(f"instance '{args.name}' {how} (pid {pid}) in {time.monotonic() - started:.1f}s")
        instance.pid_file.unlink(missing_ok=True)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    instance = Instance(args.name)
    port = instance.saved_port()
    pid = instance.running_pid()
    if pid is None or port is None:
        where = instance.url(port) if port else "(never started)"
        print(f"stopped {where}")
        return EXIT_STOPPED
    problem = probe(port)
    if problem:
        print(f"unresponsive {instance.url(port)} (pid {pid}: {problem})")
        return EXIT_UNRESPONSIVE
    print(f"running {instance.url(port)} (pid {pid})")
    return 0


def cmd_build(_args: argparse.Namespace) -> int:
    print(ensure_build())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run a local Apicurio Registry (Confluent-compatible API at "
        "/apis/ccompat/v7) on 127.0.0.1 for development, built once from Maven Central.",
        epilog="State and log in $BRIDGE_REGISTRY_STATE/<name> (default <repo>/.local/registry/"
        "<name>); the build in $BRIDGE_REGISTRY_CACHE "
        "(default ~/.cache/fonestorm-bridge/apicurio-registry-<version>).",
    )
    common = instance_options()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    start = sub.add_parser(
        "start",
        parents=[common],
        help="start (or reuse) the registry; prints its base URL last",
    )
    start.add_argument(
        "--port", type=int, help=f"HTTP port (default {DEFAULT_PORT}, or the last one used)"
    )
    start.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the registry to answer (default 120; the build not counted)",
    )
    start.set_defaults(func=cmd_start)
    stop = sub.add_parser(
        "stop", parents=[common], help="stop the registry (SIGTERM, SIGKILL after 30s)"
    )
    stop.set_defaults(func=cmd_stop)
    status = sub.add_parser(
        "status",
        parents=[common],
        help="print running/stopped and the URL; exit 0 running, 3 stopped, 4 unresponsive",
    )
    status.set_defaults(func=cmd_status)
    build = sub.add_parser("build", help="only build (or reuse) the registry; prints its folder")
    build.set_defaults(func=cmd_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, info)
