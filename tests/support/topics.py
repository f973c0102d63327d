"""Topics in tests: an admin client, fresh topics for the bridge, `fonestorm-bridge topics`.

Also a plugin (``pytest_plugins`` in ``tests/conftest.py``): fixture ``admin``, an admin client
of the cluster that fixture ``topics_bootstrap`` names (the session's broker, unless a test
module overrides it).
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from bridge.cli import build_parser
from bridge.kafka.topics_cli import run_topics
from bridge.settings import Settings, TopicSettings


@asynccontextmanager
async def kafka_admin(
    bootstrap: str, client_id: str = "tests"
) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client of the cluster at ``bootstrap``, closed on the way out."""
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def topics_bootstrap(kafka_bootstrap: str) -> str:
    """The cluster of fixture ``admin``: the session's broker."""
    return kafka_bootstrap


@pytest.fixture
async def admin(topics_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client of the cluster of ``topics_bootstrap``."""
    async with kafka_admin(topics_bootstrap) as client:
        yield client


async def add_partitions(bootstrap: str, topic: str, total: int) -> None:
    """Grow ``topic`` to ``total`` partitions."""
    async with kafka_admin(bootstrap) as admin:
        await admin.create_partitions({topic: NewPartitions(total_count=total)})


@asynccontextmanager
async def fresh_topics(
    admin: AIOKafkaAdminClient, prefix: str, **settings: Any
) -> AsyncIterator[Settings]:
    """``Settings(**settings)`` naming topics that do not exist yet (``PREFIX-FIELD-SUFFIX``);
    those that exist on the way out are deleted."""
    suffix = uuid.uuid4().hex[:10]
    names = {field: f"{prefix}-{field}-{suffix}" for field in TopicSettings.model_fields}
    yield Settings(topics=names, **settings)
    existing = set(await admin.list_topics())
    created = [name for name in names.values() if name in existing]
    if created:
        await admin.delete_topics(created)


async def topics_tool(settings: Settings, *argv: str) -> tuple[int, str, str]:
    """Run `fonestorm-bridge topics ARGV` in this event loop: status, stdout, stderr."""
    args = build_parser().parse_args(["topics", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = await run_topics(settings, args, out, err)
    return code, out.getvalue(), err.getvalue()


async def check_settles(settings: Settings, expected: str) -> tuple[int, str, str]:
    """`topics check` once its report is ``expected``, or its last report after 30 s.

    Each broker learns of a new topic or config a moment after the request that made it
    returns, and `check` asks any one of them.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        code, out, err = await topics_tool(settings, "check")
        if out == expected or loop.time() > deadline:
            return code, out, err
        await asyncio.sleep(0.1)
