"""A broker of a test's own, which the test may stop and start (outage tests).

A plugin (``pytest_plugins`` in ``tests/conftest.py``): fixture ``dedicated_broker``, a
``scripts/local-kafka`` instance ``fault-<pid>`` on free ports, never the session broker.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.paths import LOCAL_KAFKA, REPO_ROOT
from tests.support.ports import free_ports


@dataclass
class Broker:
    """A dedicated local-kafka instance that the test may stop and start."""

    name: str
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def args(self, command: str) -> list[str]:
        """The command line of ``local-kafka COMMAND`` for this broker."""
        args = [sys.executable, str(LOCAL_KAFKA), command, "--name", self.name]
        if command == "start":
            args += ["--port", str(self.port), "--controller-port", str(self.controller_port)]
            args += ["--timeout", "90"]
        return args

    async def run(self, command: str, *extra: str) -> None:
        """``local-kafka COMMAND`` without blocking the event loop (the load goes on)."""
        proc = await asyncio.create_subprocess_exec(
            *self.args(command), *extra, cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate()
        assert proc.returncode == 0, f"local-kafka {command} failed: {err.decode()}"


@pytest.fixture
def dedicated_broker() -> Iterator[Broker]:
    broker = Broker(f"fault-{os.getpid()}", *free_ports(2))
    started = subprocess.run(
        [*broker.args("start"), "--fresh"], cwd=REPO_ROOT, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        yield broker
    finally:
        subprocess.run(
            [*broker.args("stop"), "--purge"], cwd=REPO_ROOT, capture_output=True, check=False
        )
