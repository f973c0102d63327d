"""Run a real single-node Apache Kafka (KRaft, broker+controller) on 127.0.0.1 without Docker.

    scripts/local-kafka start [--name NAME] [--port 9092] [--controller-port PORT+1] [--fresh]
                              [--brokers N]
                              [--sasl-port PORT --scram-user USER:PASSWORD]
                              [--ssl-port PORT [--ssl-client-auth {none,required}]]
    scripts/local-kafka status [--name NAME] [--json]
    scripts/local-kafka stop [--name NAME]
    scripts/local-kafka fetch            # only download the broker jars (e.g. a CI cache step)

The broker jars come from Maven Central (`mvn dependency:copy-dependencies` on
scripts/kafka-pom.xml) into a cache reused between runs; the broker runs as a detached
`java -cp '<cache>/lib/*' kafka.Kafka server.properties`. `start` returns once the broker
answers Kafka requests (ApiVersions + Metadata listing itself) and prints the bootstrap address
as the last line of stdout; everything else goes to stderr.

With --brokers 3 it runs three nodes instead (each a broker and a controller, one KRaft quorum;
node i in <state>/<name>/node-i), with default.replication.factor=3 and min.insync.replicas=2,
and prints the bootstrap list; `stop` and `status` act on every node.

With --ssl-port the broker also listens with TLS (listener SSL). `start` then makes a throwaway
CA, a broker certificate (SAN IP:127.0.0.1, DNS:localhost) and a client certificate for mTLS
with the `openssl` CLI, once per instance (again with --fresh, or when they near expiry), in
<state>/<name>/tls/: ca.pem (trust this), client.pem + client.key (the client certificate and
its unencrypted PKCS#8 key), plus the broker's broker-keystore.pem and the CA's ca.key. `status
--json` prints these paths and every listener's address.

Needs only Python 3 (stdlib), Java 17+ and Maven 3 (and OpenSSL for --ssl-port).

Environment:
    BRIDGE_KAFKA_CACHE      jar cache folder (default ~/.cache/fonestorm-bridge/kafka-<version>)
    BRIDGE_KAFKA_STATE      state root holding one folder per instance (default <repo>/.local/kafka)
    BRIDGE_KAFKA_VERSION    Kafka version (default: <kafka.version> in scripts/kafka-pom.xml)
    BRIDGE_KAFKA_JAVA_OPTS  extra JVM options for the broker (appended)
    JAVA_HOME               java is $JAVA_HOME/bin/java when set, else `java` on PATH
    MVN                     Maven executable (default `mvn` on PATH)
    OPENSSL                 OpenSSL executable for --ssl-port (default `openssl` on PATH)
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

from tools.local_kafka.cluster import cluster_status, start_cluster, stop_cluster
from tools.local_kafka.common import (
    EXIT_STOPPED,
    EXIT_UNRESPONSIVE,
    HOST,
    PROG,
    info,
    instance_options,
    run_command,
)
from tools.local_kafka.config import SSL_CLIENT_AUTH
from tools.local_kafka.jars import ensure_jars
from tools.local_kafka.launch import launch, reuse_running
from tools.local_kafka.paths import file_lock, instance_paths, kafka_version
from tools.local_kafka.probe import probe_broker
from tools.local_kafka.process import running_pid, terminate
from tools.local_kafka.state import load_config, resolve_config, status_document


def cmd_start(args: argparse.Namespace) -> int:
    paths = instance_paths(args.name)
    paths.root.mkdir(parents=True, exist_ok=True)
    version = kafka_version()
    lib = ensure_jars(version)  # outside the instance lock: it has its own
    with file_lock(paths.lock_file):
        if resolve_config(args).brokers > 1:
            print(start_cluster(args, paths, lib, version), flush=True)
            return 0
        pid = running_pid(paths)
        bootstrap = reuse_running(args, paths, pid) if pid is not None else None
        if bootstrap is None:
            paths.pid_file.unlink(missing_ok=True)
            bootstrap = launch(args, paths, lib, version).bootstrap
    print(bootstrap, flush=True)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    paths = instance_paths(args.name)
    if not paths.root.is_dir():
        info(f"instance '{args.name}' stopped (never started)")
        return 0
    with file_lock(paths.lock_file):
        config = load_config(args.name)
        pid = running_pid(paths)
        if config is not None and config.brokers > 1:
            stop_cluster(config, paths)
        elif pid is None:
            info(f"instance '{args.name}' already stopped")
        else:
            started = time.monotonic()
            killed = terminate(pid)
            how = "killed after SIGTERM timeout" if killed else "stopped"
            info(f"instance '{args.name}' {how} (pid {pid}) in {time.monotonic() - started:.1f}s")
        paths.pid_file.unlink(missing_ok=True)
        if args.purge:
            shutil.rmtree(paths.root, ignore_errors=True)
            info(f"deleted {paths.root}")
        return 0


def cmd_status(args: argparse.Namespace) -> int:
    paths = instance_paths(args.name)
    config = load_config(args.name)
    address = config.bootstrap if config else "(never started)"
    pid = running_pid(paths)
    problem = None
    if config is not None and config.brokers > 1:
        state, exit_code, line, nodes = cluster_status(config, paths)
        if args.json:
            document = status_document(args.name, state, None, None)
            print(json.dumps({**document, "brokers": config.brokers, "nodes": nodes}, indent=2))
        else:
            print(line)
        return exit_code
    if pid is None or config is None:
        state, exit_code, line = "stopped", EXIT_STOPPED, f"stopped {address}"
    else:
        problem = probe_broker((HOST, config.port))
        if problem:
            state, exit_code = "unresponsive", EXIT_UNRESPONSIVE
            line = f"unresponsive {address} (pid {pid}: {problem})"
        else:
            state, exit_code, line = "running", 0, f"running {address} (pid {pid})"
    if args.json:
        print(json.dumps(status_document(args.name, state, pid, problem), indent=2))
    else:
        print(line)
    return exit_code


def cmd_fetch(_args: argparse.Namespace) -> int:
    print(ensure_jars(kafka_version()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run a local single-node Apache Kafka (KRaft) on 127.0.0.1 for development "
        "and tests. Jars come from Maven Central via scripts/kafka-pom.xml.",
        epilog="State lives in $BRIDGE_KAFKA_STATE/<name> (default <repo>/.local/kafka/<name>), "
        "with the SSL listener's CA and client certificate in <state dir>/tls/ (ca.pem, "
        "client.pem, client.key); jars in $BRIDGE_KAFKA_CACHE "
        "(default ~/.cache/fonestorm-bridge/kafka-<version>).",
    )
    common = instance_options()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    start = sub.add_parser(
        "start",
        parents=[common],
        help="start (or reuse) the broker; prints the bootstrap address last",
        description="Start the broker unless it already runs, wait until it answers Kafka "
        "requests, and print its bootstrap address as the last stdout line.",
    )
    start.add_argument(
        "--port", type=int, help="client (PLAINTEXT) port (default 9092, or the last one used)"
    )
    start.add_argument(
        "--controller-port",
        type=int,
        help="KRaft controller port (default port+1; with --brokers N, port+N)",
    )
    start.add_argument(
        "--brokers",
        type=int,
        metavar="N",
        help="run N KRaft nodes, each a broker and a controller of one quorum: node i (from 1) "
        "on port+i-1 and controller-port+i-1, in <state dir>/node-i; topics get replication "
        "factor min(3, N) and min.insync.replicas one less (default 1, or the last one used)",
    )
    start.add_argument(
        "--sasl-port",
        type=int,
        help="also listen with SASL_PLAINTEXT (SCRAM-SHA-256/512) on this port",
    )
    start.add_argument(
        "--scram-user",
        action="append",
        metavar="USER:PASSWORD",
        help="SCRAM credentials created when the storage is formatted (use with --fresh)",
    )
    start.add_argument(
        "--ssl-port",
        type=int,
        help="also listen with TLS (listener SSL) on this port, with a certificate from a "
        "throwaway CA made in <state dir>/tls/ (ca.pem; client.pem + client.key for mTLS)",
    )
    start.add_argument(
        "--ssl-client-auth",
        choices=SSL_CLIENT_AUTH,
        help="ssl.client.auth of the SSL listener: 'required' refuses clients without a "
        "certificate from the CA (default none, or the last one used)",
    )
    start.add_argument(
        "--override",
        action="append",
        metavar="KEY=VALUE",
        help="a server.properties entry of every node, in place of the default one, e.g. "
        "broker.session.timeout.ms=3000 (repeatable; default none, or the last ones used)",
    )
    start.add_argument(
        "--fresh",
        action="store_true",
        help="wipe the instance's data first (restarts the instance if it is running)",
    )
    start.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the broker to answer (default 120; Maven fetch not counted)",
    )
    start.add_argument(
        "--owner-pid",
        type=int,
        metavar="PID",
        help="claim the instance for process PID (e.g. a test session): while PID lives, "
        "another `start --owner-pid` or `start --fresh` of this instance fails with exit 5 "
        "instead of sharing or restarting the broker under it",
    )
    start.set_defaults(func=cmd_start)

    stop = sub.add_parser(
        "stop",
        parents=[common],
        help="stop the broker (SIGTERM, SIGKILL after 30s); idempotent",
    )
    stop.add_argument(
        "--purge", action="store_true", help="also delete the instance's state dir (data, logs)"
    )
    stop.set_defaults(func=cmd_stop)

    status = sub.add_parser(
        "status",
        parents=[common],
        help="print running/stopped and the address; exit 0 running, 3 stopped, 4 unresponsive",
    )
    status.add_argument(
        "--json",
        action="store_true",
        help="print a JSON object instead: state, pid, every listener's address and the TLS "
        "files (tls.ssl_cafile, tls.ssl_certfile, tls.ssl_keyfile) of the SSL listener",
    )
    status.set_defaults(func=cmd_status)

    fetch = sub.add_parser("fetch", help="only download the broker jars; prints the lib dir")
    fetch.set_defaults(func=cmd_fetch)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, info)
