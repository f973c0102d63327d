"""Command line: ``fonestorm-bridge COMMAND``; `--help` lists the commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from bridge.app import create_app
from bridge.contracts import registry as schemas
from bridge.contracts.commands import PlaceCallCommand
from bridge.dead_letters.cli import add_dead_letters_parser
from bridge.errors import BridgeError
from bridge.fonestorm.registration import produce_command, register_callbacks
from bridge.forked import run_forked
from bridge.kafka.lenient_records import read_any_header_name
from bridge.kafka.no_auto_create import forbid_topic_auto_creation
from bridge.kafka.topics_cli import add_topics_parser
from bridge.obs import http_spans, tracing
from bridge.obs.logs import setup_logging
from bridge.phone import mask_numbers
from bridge.schema_registry.client import RegistryError
from bridge.settings import Settings, SettingsError, load_settings, receiver_auth_problem
from bridge.stop_signals import exit_status, received, release
from bridge.web import server

log = logging.getLogger(__name__)


def _run_http(settings: Settings, app: web.Application, *, reuse_port: bool = False) -> None:
    log.info(
        "listening on %s:%d (kafka %s)",
        settings.http.host,
        settings.http.port,
        settings.kafka.bootstrap_servers,
    )
    # SIGTERM/SIGINT is a graceful stop: close the listener, wait for in-flight requests up to
    # shutdown_timeout, then run cleanup contexts (producer flush).
    server.run(app, settings.http, reuse_port=reuse_port)
    log.info("stopped")


def _stopped_before_start() -> int | None:
    """The exit status when a stop signal came before anything started (see stop_signals)."""
    signum = received()
    if signum is None:
        return None
    log.info("%s before start-up: not starting", signal.Signals(signum).name)
    return exit_status(signum)


def _serve(
    settings: Settings, make_app: Callable[[], web.Application], *, reuse_port: bool = False
) -> int:
    if (stopped := _stopped_before_start()) is not None:
        return stopped
    # In the serving process (after any fork): the instrumentation patches classes the app is
    # built from, and the span exporter's thread must live in the process that makes spans.
    tracing.setup()
    try:
        _run_http(settings, make_app(), reuse_port=reuse_port)
    except RegistryError as exc:
        # Registry mode refused to start: one clear line, not a traceback.
        print(f"fonestorm-bridge: {exc}", file=sys.stderr)
        return 1
    finally:
        tracing.shutdown()  # flushes what is left (a forked child leaves by os._exit)
    return 0


def _run_processes(
    settings: Settings, workers: int, make_app: Callable[[], web.Application]
) -> int:
    """Serve ``make_app()`` in ``workers`` forked processes sharing the port (SO_REUSEPORT).

    How the parent stops them, and its exit status: :mod:`bridge.forked`.
    """
    if workers == 1:
        return _serve(settings, make_app)
    if (stopped := _stopped_before_start()) is not None:
        return stopped
    return run_forked(
        workers, lambda: _serve(settings, make_app, reuse_port=True), settings.http.port
    )


def _refuse_without_auth(settings: Settings) -> int | None:
    """Exit status 2 and the reason when the receiver may not start (fail closed)."""
    problem = receiver_auth_problem(settings)
    if problem is None:
        return None
    print(f"fonestorm-bridge: {problem}", file=sys.stderr)
    return 2


def cmd_receiver(settings: Settings, args: argparse.Namespace) -> int:
    """Run the callback receiver."""
    refused = _refuse_without_auth(settings)
    if refused is not None:
        return refused
    return _run_processes(settings, args.workers, lambda: create_app(settings))


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run the place-call command worker (with /healthz, /readyz, /metrics).

    With ``--workers N`` each process is one more consumer in the group: partitions, and so
    commands, are split between them as between replicas.
    """
    return _run_processes(
        settings, args.workers, lambda: create_app(settings, receiver=False, worker=True)
    )


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run everything the bridge has (in one process, or ``--workers`` processes)."""
    refused = _refuse_without_auth(settings)
    if refused is not None:
        return refused
    return _run_processes(
        settings, args.workers, lambda: create_app(settings, receiver=True, worker=True)
    )


def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    """Run the FoneStorm sandbox (settings ``BRIDGE_SANDBOX__*``) until SIGTERM/SIGINT."""
    # Imported here: the bridge's services never load the look-alike of what they talk to.
    from bridge.sandbox.app import API_PREFIX, run_sandbox  # noqa: PLC0415
    from bridge.sandbox.settings import SandboxSettings  # noqa: PLC0415

    sandbox_settings = SandboxSettings()
    if (stopped := _stopped_before_start()) is not None:
        return stopped
    # Traced too when OTEL_* says so: FoneStorm's side of each create-call joins the trace.
    tracing.setup(service="fonestorm-sandbox")

    async def main() -> None:
        # Its API requests only: the spans of FoneStorm's side of the bridge's requests.
        traced = http_spans.server_middlewares(f"{API_PREFIX}/")
        task = asyncio.create_task(run_sandbox(sandbox_settings, middlewares=traced))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        if received() is not None:  # noted after _stopped_before_start looked
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        tracing.shutdown()
    return 0


def cmd_register_callbacks(settings: Settings, args: argparse.Namespace) -> int:
    """Point send-notify and receive-notify of our FoneNumbers at the receiver."""
    try:
        asyncio.run(register_callbacks(settings))
    except (BridgeError, ValueError) as exc:
        print(f"fonestorm-bridge: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_place_call(settings: Settings, args: argparse.Namespace) -> int:
    """Produce one PlaceCallCommand (for trying the bridge out)."""
    command = PlaceCallCommand(
        command_id=args.command_id or str(uuid.uuid4()),
        fonenumber=args.fonenumber,
        to=args.to,
        tts=args.tts,
        correlation_id=args.correlation_id,
    )
    asyncio.run(produce_command(settings, command))
    print(command.model_dump_json())
    return 0


def cmd_schemas_export(settings: Settings, args: argparse.Namespace) -> int:
    """Write the JSON Schema files."""
    for path in schemas.export(Path(args.dir)):
        print(path)
    return 0


def cmd_schemas_check(settings: Settings, args: argparse.Namespace) -> int:
    """Fail when the schema files differ from the models or break their released versions."""
    directory = Path(args.dir)
    released = Path(args.released) if args.released else None
    out = schemas.stale(directory)
    for name in out:
        print(f"stale: {name}", file=sys.stderr)
    broken = schemas.incompatible(directory, released)
    for name, problems in broken.items():
        for problem in problems:
            print(f"incompatible: {name}: {problem}", file=sys.stderr)
    if broken:
        print(
            "a schema must stay BACKWARD compatible with its released version; "
            "a breaking change needs a new version (see the README's Schemas section)",
            file=sys.stderr,
        )
    return 1 if out or broken else 0


def cmd_schemas_release(settings: Settings, args: argparse.Namespace) -> int:
    """Record the current schema files as released."""
    released = Path(args.released) if args.released else None
    for path in schemas.release(Path(args.dir), released):
        print(path)
    return 0


def cmd_healthcheck(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 when this container's ``/healthz`` answers 200 (the image's HEALTHCHECK)."""
    # The admin port when set: the callback port then answers nothing but callbacks.
    port = settings.http.admin_port or settings.http.port
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"fonestorm-bridge: /healthz on port {port}: {exc}", file=sys.stderr)
        return 1


_SERVICES = frozenset({"receiver", "worker", "serve", "sandbox"})


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; settings come from ``BRIDGE_*`` variables, not flags."""
    parser = argparse.ArgumentParser(
        prog="fonestorm-bridge",
        description="Bridge FoneStorm call callbacks and place-call commands to and from Kafka. "
        "Configure with BRIDGE_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    workers = argparse.ArgumentParser(add_help=False)
    workers.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="processes sharing the port with SO_REUSEPORT (default 1)",
    )
    sub.add_parser(
        "receiver", parents=[workers], help="run the callback receiver (HTTP → Kafka)"
    ).set_defaults(func=cmd_receiver)
    sub.add_parser(
        "worker", parents=[workers], help="run the place-call command worker (Kafka → FoneStorm)"
    ).set_defaults(func=cmd_worker)
    sub.add_parser(
        "serve", parents=[workers], help="run everything: the receiver and the command worker"
    ).set_defaults(func=cmd_serve)
    sub.add_parser(
        "sandbox", help="run the FoneStorm look-alike API (BRIDGE_SANDBOX__*)"
    ).set_defaults(func=cmd_sandbox)
    sub.add_parser(
        "register-callbacks",
        help="point send/receive-notify of the FoneNumbers at BRIDGE_FONESTORM__PUBLIC_URL",
    ).set_defaults(func=cmd_register_callbacks)
    sub.add_parser(
        "healthcheck", help="exit 0 when /healthz of the local bridge answers (admin port if set)"
    ).set_defaults(func=cmd_healthcheck)
    place = sub.add_parser("place-call", help="produce one place-call command to Kafka")
    place.add_argument("--to", required=True, help="number to call")
    place.add_argument("--fonenumber", required=True, help="our FoneNumber to call from")
    place.add_argument("--tts", help="text to speech")
    place.add_argument("--command-id", help="idempotency key (default: a new UUID)")
    place.add_argument("--correlation-id", help="your id, copied to results and events")
    place.set_defaults(func=cmd_place_call)
    schemas_parser = sub.add_parser("schemas", help="JSON Schema files of the events")
    schemas_sub = schemas_parser.add_subparsers(dest="schemas_command", required=True)
    export = schemas_sub.add_parser("export", help="write schemas/*.json from the models")
    export.add_argument("--dir", default=str(schemas.DEFAULT_DIR), help="output folder")
    export.set_defaults(func=cmd_schemas_export)
    check = schemas_sub.add_parser(
        "check",
        help="exit 1 when schemas/ differs from the models or is not BACKWARD compatible "
        "with schemas/released/",
    )
    release = schemas_sub.add_parser(
        "release", help="copy schemas/*.json into schemas/released/ (the compatibility baseline)"
    )
    for command, func in ((check, cmd_schemas_check), (release, cmd_schemas_release)):
        command.add_argument("--dir", default=str(schemas.DEFAULT_DIR), help="schema folder")
        command.add_argument("--released", help="released schemas folder (default: DIR/released)")
        command.set_defaults(func=func)
    add_dead_letters_parser(sub)
    add_topics_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command (what the ``fonestorm-bridge`` console script runs, :mod:`bridge.entry`)."""
    args = build_parser().parse_args(argv)
    if args.command not in _SERVICES and (signum := release()) is not None:
        return exit_status(signum)
    try:
        settings = load_settings()
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"fonestorm-bridge: {line}", file=sys.stderr)
        return 2
    # Phone numbers are personal data: masked in every line unless the operator asks otherwise.
    mask = None if settings.log.full_phone_numbers else mask_numbers
    setup_logging(settings.log.level, settings.log.format, mask=mask)
    if args.command in _SERVICES:
        # Secrets are SecretStr and print masked.
        log.info("starting %s with settings %s", args.command, settings.model_dump_json())
    # Before any command makes a Kafka client (the tools too: `topics`, `dead-letters`, ...).
    forbid_topic_auto_creation()
    read_any_header_name()
    return int(args.func(settings, args))


if __name__ == "__main__":
    sys.exit(main())
