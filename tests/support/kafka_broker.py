"""Fixtures: one real Kafka broker per test session, and a fresh topic per test.

A plugin (``pytest_plugins`` in ``tests/conftest.py``): fixtures ``kafka_bootstrap`` and
``new_topic``, and the terminal summary line naming the broker the session used.

Where the broker comes from, first match wins:

1. ``BRIDGE_TEST_KAFKA`` set: an external cluster's bootstrap servers, used as is.
2. A Docker engine answers: testcontainers' ``KafkaContainer`` (KRaft), image from
   ``BRIDGE_TEST_KAFKA_IMAGE`` (default :data:`DEFAULT_KAFKA_IMAGE`).
3. Otherwise ``scripts/local-kafka`` runs a real broker from Maven Central jars (Java 17 +
   Maven), instance ``test`` on 127.0.0.1:19092, wiped at start and stopped at session end.
   The session claims the instance (``--owner-pid``); a concurrent session (another worktree
   user, an xdist worker) gets a private instance ``test-<pid>`` on free ports instead.
   With ``BRIDGE_TEST_KAFKA_BROKERS=3`` it is a three-node cluster instead (instance
   ``test-cluster`` on 127.0.0.1:19192-19194, controllers on 19195-19197), and test topics get
   replication factor 3.

The fixture ``three_brokers`` is always a three-node cluster of ``scripts/local-kafka`` of its
own (started when a test first asks for it, on free ports, deleted at session end).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeAlias

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bridge.kafka.lenient_records import read_any_header_name
from bridge.kafka.no_auto_create import forbid_topic_auto_creation
from tests.support.paths import LOCAL_KAFKA, REPO_ROOT
from tests.support.ports import free_port_block, free_ports

log = logging.getLogger(__name__)


def pytest_configure(config: pytest.Config) -> None:
    """The test process starts up as the bridge does: no client asks a broker to create a topic
    (the test broker allows it), and consumers read header names that are not UTF-8, the
    tests' own clients included."""
    forbid_topic_auto_creation()
    read_any_header_name()


NewTopicFactory: TypeAlias = Callable[..., Awaitable[str]]
"""Type of the ``new_topic`` fixture: ``await new_topic(prefix="t", partitions=1) -> str``."""

LOCAL_INSTANCE = "test"
LOCAL_PORT = 19092
LOCAL_CONTROLLER_PORT = 19093
LOCAL_KAFKA_BUSY = 5  # exit code of `local-kafka start`: instance claimed or port taken
# Confluent Platform 8.1 = Apache Kafka 4.1, the line scripts/kafka-pom.xml runs locally.
DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:8.1.1"
# Brokers of the local cluster scripts/local-kafka runs for the session.
BROKERS = int(os.environ.get("BRIDGE_TEST_KAFKA_BROKERS", "1"))
LOCAL_CLUSTER_INSTANCE = "test-cluster"
LOCAL_CLUSTER_PORT = 19192
# Replication factor of test topics; raise it for an external cluster with min.insync.replicas>1.
REPLICATION_FACTOR = int(
    os.environ.get("BRIDGE_TEST_KAFKA_REPLICATION_FACTOR", str(min(3, BROKERS)))
)
TOPIC_READY_TIMEOUT = 30.0


# Which broker the session uses, for the log and the terminal summary.
_kafka_source: dict[str, str] = {}


def _chose(description: str) -> None:
    _kafka_source["kafka"] = description
    log.info("Kafka for tests: %s", description)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if "kafka" in _kafka_source:
        terminalreporter.write_line(f"Kafka for tests: {_kafka_source['kafka']}")


def _docker_available() -> bool:
    """True when a Docker engine answers a ping within a few seconds."""
    try:
        import docker  # noqa: PLC0415 - only needed when no external cluster is configured
        from docker.errors import DockerException  # noqa: PLC0415
    except ImportError:
        return False
    # docker-py leaks its socket when the engine is unreachable; under filterwarnings=error
    # the ResourceWarning of that socket's finaliser would fail whichever test runs next.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=3)
        except (DockerException, OSError):
            return False
        else:
            try:
                return bool(client.ping())
            except (DockerException, OSError):  # requests' ConnectionError is an OSError
                return False
            finally:
                client.close()
        finally:
            gc.collect()  # finalise the leaked socket while its warning is still ignored


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers (``host:port[,host:port...]``) of a real Kafka for the whole session."""
    external = os.environ.get("BRIDGE_TEST_KAFKA", "").strip()
    if external:
        _chose(f"external cluster {external} (BRIDGE_TEST_KAFKA)")
        yield external
        return
    if _docker_available():
        yield from _testcontainers_kafka()
        return
    yield from _local_kafka()


def _testcontainers_kafka() -> Iterator[str]:
    from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415

    image = os.environ.get("BRIDGE_TEST_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE)
    # One broker: the transaction log (dead-letter replay) must not ask for 3 replicas.
    container = (
        KafkaContainer(image)
        .with_kraft()
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
    )
    with container:
        bootstrap: str = container.get_bootstrap_server()
        _chose(f"testcontainers KafkaContainer({image}, KRaft) at {bootstrap}")
        yield bootstrap


def _run_local_kafka(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LOCAL_KAFKA), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )


def _start_local_kafka(
    name: str, port: int, controller_port: int, brokers: int = 1
) -> subprocess.CompletedProcess[str]:
    return _run_local_kafka(
        "start",
        "--name",
        name,
        "--port",
        str(port),
        "--controller-port",
        str(controller_port),
        *(["--brokers", str(brokers)] if brokers > 1 else []),
        "--fresh",
        "--owner-pid",  # another pytest session must not restart or stop it under us
        str(os.getpid()),
        "--timeout",
        "90",
    )


def _private_ports(brokers: int) -> tuple[int, int]:
    """Client and controller ports of a private instance: node i on port+i, controller+i."""
    if brokers == 1:
        port, controller_port = free_ports(2)
        return port, controller_port
    base = free_port_block(2 * brokers)
    return base, base + brokers


def _local_kafka() -> Iterator[str]:
    if BROKERS > 1:
        name, port = LOCAL_CLUSTER_INSTANCE, LOCAL_CLUSTER_PORT
        result = _start_local_kafka(name, port, port + BROKERS, BROKERS)
    else:
        name = LOCAL_INSTANCE
        result = _start_local_kafka(name, LOCAL_PORT, LOCAL_CONTROLLER_PORT)
    private = result.returncode == LOCAL_KAFKA_BUSY
    if private:
        # Another live pytest session owns the instance (or something else holds its ports):
        # run a private instance on free ports instead, deleted again at the end.
        name = f"{name}-{os.getpid()}"
        result = _start_local_kafka(name, *_private_ports(BROKERS), BROKERS)
    if result.returncode != 0:
        pytest.fail(
            f"scripts/local-kafka start --name {name} failed (exit {result.returncode}):\n"
            f"{result.stderr}",
            pytrace=False,
        )
    bootstrap = result.stdout.strip().splitlines()[-1]
    _chose(
        f"scripts/local-kafka instance {name!r} at {bootstrap} "
        "(no BRIDGE_TEST_KAFKA, no Docker engine)"
    )
    try:
        yield bootstrap
    finally:
        _run_local_kafka("stop", "--name", name, *(["--purge"] if private else []))


def three_brokers_instance() -> str:
    """The local-kafka instance name of the ``three_brokers`` cluster."""
    return f"{LOCAL_CLUSTER_INSTANCE}-{os.getpid()}"


def run_local_kafka(*args: str) -> subprocess.CompletedProcess[str]:
    """``scripts/local-kafka ARGS``, its output captured."""
    return _run_local_kafka(*args)


@pytest.fixture(scope="session")
def three_brokers() -> Iterator[str]:
    """Bootstrap list of a private three-node ``scripts/local-kafka`` cluster for the session
    (instance :func:`three_brokers_instance`)."""
    name = three_brokers_instance()
    for _ in range(3):  # a free port block may be taken before the cluster binds it
        result = _start_local_kafka(name, *_private_ports(3), 3)
        if result.returncode != LOCAL_KAFKA_BUSY:
            break
    try:
        if result.returncode != 0:
            pytest.fail(
                f"scripts/local-kafka start --name {name} --brokers 3 failed "
                f"(exit {result.returncode}):\n{result.stderr}",
                pytrace=False,
            )
        yield result.stdout.strip().splitlines()[-1]
    finally:
        _run_local_kafka("stop", "--name", name, "--purge")


async def _wait_for_topic(admin: AIOKafkaAdminClient, name: str, partitions: int) -> None:
    """Poll metadata until every partition of ``name`` has a leader."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TOPIC_READY_TIMEOUT
    last: Any = None
    while loop.time() < deadline:
        for topic in await admin.describe_topics([name]):
            last = topic
            parts = topic["partitions"]
            if (
                topic["error_code"] == 0
                and len(parts) == partitions
                and all(p["error_code"] == 0 and p["leader"] >= 0 for p in parts)
            ):
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"topic {name} not ready after {TOPIC_READY_TIMEOUT}s: {last!r}")


@pytest.fixture
async def new_topic(kafka_bootstrap: str) -> AsyncIterator[NewTopicFactory]:
    """Factory ``await new_topic(prefix="t", partitions=1) -> str`` creating a unique topic.

    ``configs`` are topic configs (e.g. ``{"max.message.bytes": "20000"}``). The topic exists,
    and every partition has a leader, when the call returns. Topics created through the
    factory are deleted after the test.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="tests-new-topic")
    await admin.start()
    created: list[str] = []

    async def factory(
        prefix: str = "t", partitions: int = 1, configs: dict[str, str] | None = None
    ) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        topic = NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=REPLICATION_FACTOR,
            topic_configs=configs or {},
        )
        response = await admin.create_topics([topic])
        errors = [
            entry for entry in response.to_object()["topic_errors"] if entry["error_code"] != 0
        ]
        if errors:
            raise RuntimeError(f"creating topic {name} failed: {errors!r}")
        created.append(name)
        await _wait_for_topic(admin, name, partitions)
        return name

    try:
        yield factory
    finally:
        try:
            if created:
                await admin.delete_topics(created)
        finally:
            await admin.close()
