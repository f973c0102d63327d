"""Names, exit codes and error reporting shared by every module of local-kafka (and the command
line shape local-registry shares with it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

PROG = "local-kafka"
HOST = "127.0.0.1"
NODE_ID = 1
EXIT_STOPPED = 3  # LSB "program is not running"
EXIT_UNRESPONSIVE = 4  # process alive but not answering Kafka requests
EXIT_BUSY = 5  # start: instance claimed by another live process, or a port taken by another


class LocalKafkaError(Exception):
    """A failure reported to the user as one message (plus an optional log tail)."""

    def __init__(self, message: str, *, log_tail: str = "", exit_code: int = 1) -> None:
        super().__init__(message)
        self.log_tail = log_tail
        self.exit_code = exit_code


def info(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def instance_options() -> argparse.ArgumentParser:
    """The options every command about one instance takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--name", default="default", help="instance name; one state dir each (default: default)"
    )
    return common


def run_command(
    parser: argparse.ArgumentParser, argv: list[str] | None, say: Callable[[str], None]
) -> int:
    """Parse ``argv`` and run the chosen command's ``func``: its exit code, or the exit code of
    the :class:`LocalKafkaError` it raised, told with ``say`` (2: a bad instance name)."""
    args = parser.parse_args(argv)
    name = getattr(args, "name", None)
    if name is not None and (not name or "/" in name or name.startswith(".")):
        say(f"invalid instance name {name!r}")
        return 2
    try:
        return int(args.func(args))
    except LocalKafkaError as exc:
        say(f"error: {exc}")
        if exc.log_tail:
            print(exc.log_tail, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
