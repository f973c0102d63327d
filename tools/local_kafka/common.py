"""Names, exit codes and error reporting shared by every module of local-kafka."""

from __future__ import annotations

import sys

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
