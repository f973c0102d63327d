"""`start`: reuse a running broker, or write its files, spawn the JVM and wait until it
answers Kafka requests."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

from tools.local_kafka.common import EXIT_BUSY, HOST, LocalKafkaError, info
from tools.local_kafka.config import InstanceConfig, log4j_properties, server_properties
from tools.local_kafka.paths import InstancePaths, logs_tail, write_text_atomic
from tools.local_kafka.probe import port_free, probe_broker
from tools.local_kafka.process import (
    format_storage,
    java_command,
    pid_alive,
    spawn_detached,
    terminate,
)
from tools.local_kafka.state import live_owner, load_config, resolve_config, save_state
from tools.local_kafka.tls import client_tls_context, ensure_tls


def wait_ready(
    config: InstanceConfig,
    paths: InstancePaths,
    pid: int,
    timeout: float,
    child: subprocess.Popen[bytes] | None,
) -> None:
    deadline = time.monotonic() + timeout
    reason = "not probed yet"
    tls = client_tls_context(paths) if config.ssl_port is not None else None
    while True:
        if child is not None and child.poll() is not None:
            raise LocalKafkaError(
                f"broker exited with code {child.returncode} during startup",
                log_tail=logs_tail(paths),
            )
        if child is None and not pid_alive(pid):
            raise LocalKafkaError("broker process exited", log_tail=logs_tail(paths))
        address = config.bootstrap
        reason = probe_broker((HOST, config.port)) or ""
        if not reason and config.ssl_port is not None:
            # The SSL listener must answer too: a bad certificate shows here, not in a test.
            address = f"{HOST}:{config.ssl_port} (TLS)"
            reason = probe_broker((HOST, config.ssl_port), tls=tls) or ""
        if not reason:
            return
        if time.monotonic() >= deadline:
            raise LocalKafkaError(
                f"broker did not answer on {address} within {timeout:g}s ({reason})",
                log_tail=logs_tail(paths),
            )
        time.sleep(0.25)


def spawn(lib: Path, paths: InstancePaths) -> subprocess.Popen[bytes]:
    """Start the broker JVM of ``paths`` detached, and write its pid file."""
    command = java_command(lib, paths, "kafka.Kafka", str(paths.properties))
    child = spawn_detached(command, paths.stdout_log, paths.root)
    write_text_atomic(paths.pid_file, f"{child.pid}\n")
    return child


def check_owner(args: argparse.Namespace) -> None:
    """Refuse ``start`` (with ``--fresh`` or ``--owner-pid``) of an instance that another live
    process claimed."""
    owner = live_owner(args.name)
    if owner not in (None, args.owner_pid) and (args.fresh or args.owner_pid):
        raise LocalKafkaError(
            f"instance '{args.name}' is in use by live process {owner} "
            "(started with --owner-pid); use another --name",
            exit_code=EXIT_BUSY,
        )


def reuse_running(args: argparse.Namespace, paths: InstancePaths, pid: int) -> str | None:
    """Handle `start` on a running instance: its bootstrap address to reuse it, or None once
    it has been stopped for a --fresh restart."""
    config = resolve_config(args)
    previous = load_config(args.name)
    check_owner(args)
    if args.fresh:
        info(f"--fresh: restarting running instance '{args.name}' (pid {pid})")
        terminate(pid)
        paths.pid_file.unlink(missing_ok=True)
        return None
    if previous is not None and previous != config:
        raise LocalKafkaError(
            f"instance '{args.name}' already runs on {previous.bootstrap} "
            f"(controller {previous.controller_port}); stop it first"
        )
    running = previous or config
    wait_ready(running, paths, pid, args.timeout, child=None)
    if args.owner_pid:
        save_state(paths, running, args.owner_pid)
    info(f"instance '{args.name}' already running (pid {pid})")
    return running.bootstrap


def launch(
    args: argparse.Namespace, paths: InstancePaths, lib: Path, version: str
) -> InstanceConfig:
    """Write the config, format storage if needed, start the JVM and wait until it answers."""
    config = resolve_config(args)
    for port in config.ports:
        if not port_free(port):
            raise LocalKafkaError(
                f"{HOST}:{port} is already in use by another process", exit_code=EXIT_BUSY
            )
    if args.fresh:
        shutil.rmtree(paths.data, ignore_errors=True)
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    if config.ssl_port is not None:
        ensure_tls(paths, fresh=args.fresh)
    write_text_atomic(paths.properties, server_properties(config, paths))
    write_text_atomic(paths.log4j, log4j_properties(paths))
    save_state(paths, config, args.owner_pid)

    started = time.monotonic()
    if not paths.meta_properties.is_file():
        format_storage(lib, paths, args.scram_user or [])
    child = spawn(lib, paths)
    info(f"started Kafka {version} instance '{args.name}' (pid {child.pid}), waiting...")
    try:
        wait_ready(config, paths, child.pid, args.timeout, child)
    except LocalKafkaError:
        terminate(child.pid, grace=10)
        paths.pid_file.unlink(missing_ok=True)
        raise
    info(f"ready in {time.monotonic() - started:.1f}s; logs in {paths.logs}")
    return config
