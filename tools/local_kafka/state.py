"""An instance's saved state (instance.json): its config, its owner, and `status --json`."""

from __future__ import annotations

import argparse
import json

from tools.local_kafka.common import HOST, LocalKafkaError
from tools.local_kafka.config import InstanceConfig
from tools.local_kafka.paths import InstancePaths, instance_paths, write_text_atomic
from tools.local_kafka.process import pid_alive


def _load_state(name: str) -> dict[str, object]:
    try:
        data = json.loads(instance_paths(name).state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_config(name: str) -> InstanceConfig | None:
    data = _load_state(name)
    try:
        sasl = data.get("sasl_port")
        ssl_port = data.get("ssl_port")
        return InstanceConfig(
            name,
            int(str(data["port"])),
            int(str(data["controller_port"])),
            int(str(sasl)) if sasl is not None else None,
            int(str(ssl_port)) if ssl_port is not None else None,
            str(data.get("ssl_client_auth") or "none"),
            int(str(data.get("brokers") or 1)),
            parse_overrides(data.get("overrides") or []),
        )
    except (KeyError, TypeError, ValueError, LocalKafkaError):
        return None


def parse_overrides(items: object) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` strings as (key, value) pairs, in order."""
    if not isinstance(items, list):
        raise LocalKafkaError("overrides must be a list of KEY=VALUE")
    pairs = []
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise LocalKafkaError(f"--override {item!r}: expected KEY=VALUE")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def live_owner(name: str) -> int | None:
    """The pid that claimed the instance with --owner-pid, if that process still lives."""
    owner = _load_state(name).get("owner_pid")
    return owner if isinstance(owner, int) and owner > 0 and pid_alive(owner) else None


def save_state(paths: InstancePaths, config: InstanceConfig, owner_pid: int | None) -> None:
    state = {**config.to_json(), "owner_pid": owner_pid}
    write_text_atomic(paths.state_file, json.dumps(state, indent=2) + "\n")


def _overrides(
    args: argparse.Namespace, inherit: InstanceConfig | None
) -> tuple[tuple[str, str], ...]:
    given = getattr(args, "override", None)
    if given is not None:
        return parse_overrides(given)
    return inherit.overrides if inherit else ()


def resolve_config(args: argparse.Namespace) -> InstanceConfig:
    previous = load_config(args.name)
    brokers = getattr(args, "brokers", None)
    if brokers is None:
        brokers = previous.brokers if previous and args.port is None else 1
    if brokers < 1:
        raise LocalKafkaError("--brokers must be at least 1")
    port = args.port if args.port is not None else (previous.port if previous else 9092)
    if args.controller_port is not None:
        controller_port = args.controller_port
    elif previous and args.port is None and previous.brokers == brokers:
        controller_port = previous.controller_port
    else:
        controller_port = port + brokers
    # Extra listeners (and their options) carry over like the ports unless --port changes.
    inherit = previous if previous and args.port is None else None
    sasl_port = getattr(args, "sasl_port", None)
    if sasl_port is None and inherit:
        sasl_port = inherit.sasl_port
    ssl_port = getattr(args, "ssl_port", None)
    if ssl_port is None and inherit:
        ssl_port = inherit.ssl_port
    ssl_client_auth = getattr(args, "ssl_client_auth", None)
    if ssl_client_auth is not None and ssl_port is None:
        raise LocalKafkaError("--ssl-client-auth needs --ssl-port")
    if ssl_client_auth is None:
        ssl_client_auth = inherit.ssl_client_auth if inherit and ssl_port is not None else "none"
    if brokers > 1:
        if getattr(args, "sasl_port", None) is not None or getattr(args, "ssl_port", None):
            raise LocalKafkaError("--sasl-port and --ssl-port need a single broker")
        sasl_port = ssl_port = None
        ssl_client_auth = "none"
    config = InstanceConfig(
        args.name,
        port,
        controller_port,
        sasl_port,
        ssl_port,
        ssl_client_auth,
        brokers,
        _overrides(args, inherit),
    )
    if len(set(config.ports)) < len(config.ports):
        raise LocalKafkaError(
            "--port, --controller-port, --sasl-port and --ssl-port must differ "
            "(with --brokers N, node i listens on port+i and controller-port+i)"
        )
    return config


def status_document(
    name: str, state: str, pid: int | None, problem: str | None
) -> dict[str, object]:
    """`status --json`: the state, every client listener and the TLS files of the instance."""
    paths = instance_paths(name)
    config = load_config(name)

    def address(port: int | None) -> str | None:
        return f"{HOST}:{port}" if port is not None else None

    ssl_port = config.ssl_port if config else None
    return {
        "name": name,
        "state": state,
        "pid": pid,
        "problem": problem,
        "state_dir": str(paths.root),
        "logs": str(paths.logs),
        "bootstrap": config.bootstrap if config else None,
        "controller_port": config.controller_port if config else None,
        "sasl_bootstrap": address(config.sasl_port if config else None),
        "ssl_bootstrap": address(ssl_port),
        "ssl_client_auth": config.ssl_client_auth if config and ssl_port is not None else None,
        # Named like the bridge's BRIDGE_KAFKA__SSL_* settings.
        "tls": None
        if ssl_port is None
        else {
            "ssl_cafile": str(paths.ca_cert),
            "ssl_certfile": str(paths.client_cert),
            "ssl_keyfile": str(paths.client_key),
        },
    }
