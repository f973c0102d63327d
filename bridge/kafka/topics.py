"""Topic checks at start-up: create what is missing when allowed, else say exactly what is."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bridge.kafka.live_brokers import wait_for_live_broker
from bridge.kafka.options import client_options
from bridge.kafka.starting import start_or_close
from bridge.kafka.topic_admin import broker_count, create_topics
from bridge.kafka.topic_plan import plan_for
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


async def ensure_topics(settings: Settings, names: list[str]) -> None:
    """Make sure ``names`` exist; create them if ``BRIDGE_KAFKA__CREATE_TOPICS`` allows it."""
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await start_or_close(admin.start, admin.close)
    try:
        # The admin client sends each request to a broker it knows: none while Kafka names none.
        await wait_for_live_broker(
            admin._client, within=settings.kafka.request_timeout_ms / 1000, what="checking topics"
        )
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if not missing:
            return
        if not settings.kafka.create_topics:
            raise MissingTopicsError(missing)
        brokers = await broker_count(admin)
        await create_topics(admin, plan_for(settings, brokers, missing))
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
