"""`start/stop/status --brokers N`: N KRaft nodes (each a broker and a controller, one quorum),
node i in <state>/<name>/node-i with its own data, logs, pid file and server.properties."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools.local_kafka.common import (
    EXIT_BUSY,
    EXIT_STOPPED,
    EXIT_UNRESPONSIVE,
    HOST,
    LocalKafkaError,
    info,
)
from tools.local_kafka.config import (
    InstanceConfig,
    Node,
    log4j_properties,
    new_cluster_id,
    server_properties,
)
from tools.local_kafka.launch import check_owner, spawn
from tools.local_kafka.paths import InstancePaths, logs_tail, write_text_atomic
from tools.local_kafka.probe import port_free, probe_broker
from tools.local_kafka.process import (
    STOP_GRACE_SECONDS,
    format_storage,
    pid_alive,
    reap,
    running_pid,
    terminate,
)
from tools.local_kafka.state import load_config, resolve_config, save_state

#: Seconds the nodes left after the quorum is lost get to finish what needs no controller.
LEADERLESS = 2.0


def _pids(config: InstanceConfig, paths: InstancePaths) -> dict[int, int | None]:
    return {n.node_id: running_pid(paths.node(n.node_id, config.brokers)) for n in config.nodes}


def _cluster_id(config: InstanceConfig, paths: InstancePaths) -> str:
    """The id a formatted node already has (every node must share it), else a new one."""
    for node in config.nodes:
        meta = paths.node(node.node_id, config.brokers).meta_properties
        with contextlib.suppress(OSError):
            for line in meta.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "cluster.id" and value.strip():
                    return value.strip()
    return new_cluster_id()


def stop_nodes(pids: list[int], voters: int) -> bool:
    """SIGTERM every node, then SIGKILL those left once the quorum is lost; True if any was.

    A broker's controlled shutdown waits for the active controller: once fewer than a majority
    of the ``voters`` run, there is none, and the nodes left would wait out the whole grace.
    """
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    quorum_lost_at: float | None = None
    while True:
        for pid in pids:
            reap(pid)
        alive = [pid for pid in pids if pid_alive(pid)]
        now = time.monotonic()
        if not alive:
            return False
        if quorum_lost_at is None and len(alive) <= voters // 2:
            quorum_lost_at = now
        if now >= deadline or (quorum_lost_at is not None and now - quorum_lost_at >= LEADERLESS):
            break
        time.sleep(0.1)
    for pid in alive:
        terminate(pid, grace=0)
    return True


def _probe(config: InstanceConfig, node: Node) -> str | None:
    return probe_broker((HOST, node.port), node_id=node.node_id, brokers=config.brokers)


def _wait_ready(
    config: InstanceConfig,
    paths: InstancePaths,
    children: dict[int, subprocess.Popen[bytes]],
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    pending = list(config.nodes)
    while pending:
        for node in list(pending):
            node_paths = paths.node(node.node_id, config.brokers)
            child = children.get(node.node_id)
            if child is not None and child.poll() is not None:
                raise LocalKafkaError(
                    f"node {node.node_id} exited with code {child.returncode} during startup",
                    log_tail=logs_tail(node_paths),
                )
            reason = _probe(config, node)
            if reason is None:
                pending.remove(node)
            elif time.monotonic() >= deadline:
                raise LocalKafkaError(
                    f"node {node.node_id} did not answer on {node.address} within "
                    f"{timeout:g}s ({reason})",
                    log_tail=logs_tail(node_paths),
                )
        if pending:
            time.sleep(0.25)


def _prepare(
    config: InstanceConfig, paths: InstancePaths, lib: Path, node: Node, cluster_id: str
) -> None:
    node_paths = paths.node(node.node_id, config.brokers)
    node_paths.data.mkdir(parents=True, exist_ok=True)
    node_paths.logs.mkdir(parents=True, exist_ok=True)
    write_text_atomic(node_paths.properties, server_properties(config, node_paths, node))
    write_text_atomic(node_paths.log4j, log4j_properties(node_paths))
    if not node_paths.meta_properties.is_file():
        format_storage(lib, node_paths, [], cluster_id)


def start_cluster(args: argparse.Namespace, paths: InstancePaths, lib: Path, version: str) -> str:
    """Start the nodes that do not run (all of them with --fresh); the bootstrap list once
    every node answers and lists them all."""
    config = resolve_config(args)
    previous = load_config(args.name)
    pids = _pids(config, paths) if previous is None else _pids(previous, paths)
    running = [pid for pid in pids.values() if pid is not None]
    check_owner(args)
    if running and args.fresh:
        info(f"--fresh: stopping running nodes of instance '{args.name}' (pids {running})")
        stop_nodes(running, config.brokers)
        running = []
    if running and previous is not None and previous != config:
        raise LocalKafkaError(
            f"instance '{args.name}' already runs on {previous.bootstrap}; stop it first"
        )
    if args.fresh:
        for node in config.nodes:
            shutil.rmtree(paths.node(node.node_id, config.brokers).data, ignore_errors=True)
    pids = _pids(config, paths)
    down = [node for node in config.nodes if pids[node.node_id] is None]
    for node in down:
        for port in (node.port, node.controller_port):
            if not port_free(port):
                raise LocalKafkaError(
                    f"{HOST}:{port} is already in use by another process", exit_code=EXIT_BUSY
                )
    save_state(paths, config, args.owner_pid)
    started = time.monotonic()
    cluster_id = _cluster_id(config, paths)
    with ThreadPoolExecutor(max_workers=len(config.nodes)) as pool:
        list(pool.map(lambda node: _prepare(config, paths, lib, node, cluster_id), config.nodes))
    children = {}
    for node in down:
        children[node.node_id] = spawn(lib, paths.node(node.node_id, config.brokers))
    if children:
        started_pids = [child.pid for child in children.values()]
        info(
            f"started Kafka {version} instance '{args.name}': {len(children)} of "
            f"{config.brokers} nodes (pids {started_pids}), waiting..."
        )
    try:
        _wait_ready(config, paths, children, args.timeout)
    except LocalKafkaError:
        stop_nodes([child.pid for child in children.values()], config.brokers)
        raise
    info(f"ready in {time.monotonic() - started:.1f}s; logs in {paths.root}/node-*/logs")
    return config.bootstrap


def stop_cluster(config: InstanceConfig, paths: InstancePaths) -> None:
    """Stop every node of the instance."""
    pids = [pid for pid in _pids(config, paths).values() if pid is not None]
    if not pids:
        info(f"instance '{config.name}' already stopped")
        return
    started = time.monotonic()
    killed = stop_nodes(pids, config.brokers)
    how = "stopped (nodes left without a quorum killed)" if killed else "stopped"
    info(f"instance '{config.name}' {how} (pids {pids}) in {time.monotonic() - started:.1f}s")
    for node in config.nodes:
        paths.node(node.node_id, config.brokers).pid_file.unlink(missing_ok=True)


def cluster_status(
    config: InstanceConfig, paths: InstancePaths
) -> tuple[str, int, str, list[dict[str, object]]]:
    """The state, exit code and line of `status`, and one entry per node for `--json`."""
    nodes: list[dict[str, object]] = []
    for node in config.nodes:
        node_paths = paths.node(node.node_id, config.brokers)
        pid = running_pid(node_paths)
        problem = None if pid is None else probe_broker((HOST, node.port), node_id=node.node_id)
        state = "stopped" if pid is None else ("unresponsive" if problem else "running")
        nodes.append(
            {
                "node_id": node.node_id,
                "bootstrap": node.address,
                "controller_port": node.controller_port,
                "pid": pid,
                "state": state,
                "problem": problem,
                "logs": str(node_paths.logs),
            }
        )
    states = {str(entry["state"]) for entry in nodes}
    summary = ", ".join(f"node {e['node_id']} {e['state']} (pid {e['pid']})" for e in nodes)
    if states == {"running"}:
        return "running", 0, f"running {config.bootstrap} ({summary})", nodes
    if states == {"stopped"}:
        return "stopped", EXIT_STOPPED, f"stopped {config.bootstrap}", nodes
    return "unresponsive", EXIT_UNRESPONSIVE, f"degraded {config.bootstrap} ({summary})", nodes
