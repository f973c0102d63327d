"""Topic checks at start-up: create what is missing when allowed, else say exactly what is."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from bridge.kafka.options import client_options
from bridge.settings import Settings

log = logging.getLogger(__name__)


class MissingTopicsError(KafkaError):  # type: ignore[misc]
    """Topics the bridge needs do not exist and it may not create them."""


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic the bridge uses, with the configuration it creates it with."""
    topics = settings.topics
    # The ledger keeps the latest state per command (compaction) for as long as the worker
    # remembers command ids (deletion after BRIDGE_WORKER__LEDGER_RETENTION).
    ledger = {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(int(settings.worker.ledger_retention * 1000)),
        "min.compaction.lag.ms": "3600000",
    }
    return {
        topics.call_events: {},
        topics.dead_letters: {},
        topics.place_call: {},
        topics.place_call_results: {},
        topics.command_ledger: ledger,
    }


async def ensure_topics(settings: Settings, names: list[str]) -> None:
    """Make sure ``names`` exist; create them if ``BRIDGE_KAFKA__CREATE_TOPICS`` allows it."""
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if not missing:
            return
        if not settings.kafka.create_topics:
            raise MissingTopicsError(
                f"topics {missing} do not exist: create them, or set "
                "BRIDGE_KAFKA__CREATE_TOPICS=true to let the bridge create them"
            )
        configs = topic_configs(settings)
        new = [
            NewTopic(
                name=name,
                num_partitions=settings.kafka.topic_partitions,
                replication_factor=settings.kafka.topic_replication_factor,
                topic_configs=configs.get(name, {}),
            )
            for name in missing
        ]
        response = await admin.create_topics(new)
        for name, code, *_ in response.topic_errors:
            # Already-exists means another replica won the race: fine.
            if code not in (0, TopicAlreadyExistsError.errno):
                raise KafkaError(f"cannot create topic {name!r}: error code {code}")
        log.info("created topics %s", missing)
    finally:
        await admin.close()
