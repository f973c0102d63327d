"""A broker of a test's own, which the test may stop and start (outage tests).

A plugin (``pytest_plugins`` in ``tests/conftest.py``): fixture ``dedicated_broker``, a
``scripts/local-kafka`` instance ``fault-<pid>`` on free ports, never the session broker, and
fixture ``fenceable_broker``, one whose controller the test may cut it off from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest

from tests.support.controller_link import ControllerLink
from tests.support.paths import LOCAL_KAFKA, REPO_ROOT
from tests.support.ports import free_ports
from tests.support.waiting import eventually
from tools.local_kafka.common import NODE_ID


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


@dataclass
class FenceableBroker(Broker):
    """A dedicated broker that reaches its controller (itself: KRaft combined mode) through a
    :class:`~tests.support.controller_link.ControllerLink` the test cuts to have it fenced."""

    link: ControllerLink = field(repr=False, kw_only=True)

    async def fence(self) -> None:
        """Cut the broker off its controller; return once it is fenced (its metadata names no
        live broker), a ``broker.session.timeout.ms`` later."""
        self.link.cut()
        await self._until(live=False)

    def unfence(self) -> None:
        """Mend the link: the broker registers again by itself, soon."""
        self.link.mend()

    async def served(self) -> None:
        """Mend the link; return once the broker is live again."""
        self.link.mend()
        await self._until(live=True)

    async def _until(self, *, live: bool) -> None:
        conn = await create_conn("127.0.0.1", self.port)
        try:

            async def named() -> bool:
                brokers = (await conn.send(MetadataRequest([]))).brokers
                return bool(brokers) == live

            await eventually(named, "the broker live" if live else "the broker fenced", 60)
        finally:
            conn.close()

    @contextlib.contextmanager
    def unfenced_when_waited_for(self) -> Iterator[None]:
        """Mend the link the moment the bridge says it waits for a live broker."""
        link = self.link

        class Mend(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                link.mend()

        logger = logging.getLogger("bridge.kafka.live_brokers")
        handler = Mend(logging.WARNING)
        logger.addHandler(handler)
        try:
            yield
        finally:
            logger.removeHandler(handler)


def _start(broker: Broker, *extra: str) -> None:
    started = subprocess.run(
        [*broker.args("start"), "--fresh", *extra], cwd=REPO_ROOT, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr


def _stop(broker: Broker) -> None:
    subprocess.run(
        [*broker.args("stop"), "--purge"], cwd=REPO_ROOT, capture_output=True, check=False
    )


@pytest.fixture
def dedicated_broker() -> Iterator[Broker]:
    broker = Broker(f"fault-{os.getpid()}", *free_ports(2))
    try:
        _start(broker)
        yield broker
    finally:
        _stop(broker)


@pytest.fixture
def fenceable_broker() -> Iterator[FenceableBroker]:
    port, controller_port, link_port = free_ports(3)
    with ControllerLink(link_port, controller_port) as link:
        broker = FenceableBroker(f"fault-{os.getpid()}", port, controller_port, link=link)
        try:
            # The broker finds its controller at the quorum's voter address: the link's. A
            # shorter session than Kafka's 9 s, so that a cut fences it sooner.
            _start(
                broker,
                f"--override=controller.quorum.voters={NODE_ID}@127.0.0.1:{link_port}",
                "--override=broker.session.timeout.ms=3000",
                "--override=broker.heartbeat.interval.ms=500",
            )
            yield broker
        finally:
            link.mend()  # a controlled shutdown asks the controller
            _stop(broker)
