"""Topic checks at start-up: create what is missing when allowed, else say exactly what is."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from bridge.kafka.options import client_options
from bridge.kafka.starting import start_or_close
from bridge.retrying import backoff_delays
from bridge.settings import Settings

log = logging.getLogger(__name__)


class MissingTopicsError(KafkaError):  # type: ignore[misc]
    """Topics the bridge needs do not exist and it may not create them."""

    def __init__(self, topics: list[str]) -> None:
        super().__init__(
            f"topics {topics} do not exist: create them, or run `serve` with "
            "BRIDGE_KAFKA__CREATE_TOPICS=true to let the bridge create them"
        )
        self.topics = topics


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
        # The latest replay of each dead letter is all `dead-letters replay` reads.
        topics.dead_letter_replays: {"cleanup.policy": "compact"},
        # An audit trail: every record kept for the topic's retention, none compacted away.
        topics.dead_letter_audit: {"cleanup.policy": "delete"},
        topics.place_call: {},
        topics.place_call_results: {},
        topics.command_ledger: ledger,
    }


async def ensure_topics(settings: Settings, names: list[str]) -> None:
    """Make sure ``names`` exist; create them if ``BRIDGE_KAFKA__CREATE_TOPICS`` allows it."""
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await start_or_close(admin.start, admin.close)
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if not missing:
            return
        if not settings.kafka.create_topics:
            raise MissingTopicsError(missing)
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


class TopicWatch:
    """Waits until topics exist (creating them when allowed) and says once which are missing.

    A missing topic needs an operator, so it is logged once (and again only when the set of
    missing topics changes), not once per retry; the topics are checked again every
    ``recheck`` seconds. Other Kafka errors (broker unreachable) are retried with backoff.
    """

    #: Seconds between checks while topics are missing.
    recheck: float = 5.0

    def __init__(
        self,
        settings: Settings,
        names: list[str],
        *,
        what: str,
        level: int = logging.ERROR,
        on_change: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._settings = settings
        self._names = names
        self._what = what
        self._level = level
        self._on_change = on_change or (lambda missing: None)

    async def wait(self) -> None:
        """Return once every topic exists; ``on_change`` hears what is missing meanwhile."""
        reported: list[str] = []
        delays = backoff_delays(0.5, 10.0)
        while True:
            try:
                await ensure_topics(self._settings, self._names)
            except MissingTopicsError as exc:
                if exc.topics != reported:
                    log.log(self._level, "%s: %s", self._what, exc)
                    reported = exc.topics
                    self._on_change(reported)
                await asyncio.sleep(self.recheck)
            except KafkaError as exc:
                delay = next(delays)
                log.warning(
                    "%s: checking topics failed (%s); retrying in %.1fs", self._what, exc, delay
                )
                await asyncio.sleep(delay)
            else:
                if reported:
                    log.info("%s: topics %s exist now", self._what, reported)
                    self._on_change([])
                return
