"""Names and messages shared by the modules of local-registry."""

from __future__ import annotations

import sys

PROG = "local-registry"
HOST = "127.0.0.1"
DEFAULT_PORT = 8081  # the port Confluent-compatible clients expect a registry on
#: The Confluent-compatible API; `start` waits until its subject list answers.
CCOMPAT_PATH = "/apis/ccompat/v7"


def info(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
