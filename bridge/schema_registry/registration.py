"""Registry mode at start: every schema registered, or the process refuses to start.

Each (topic, model) of :func:`bridge.schema_registry.naming.published` is registered under its
subject, after setting the subject's compatibility level when it has none. Registering what is
already there is a no-op that answers the existing id, so every process of every replica does
it. The ids are kept for the life of the process: the registry is not asked again for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from bridge.contracts.base import VersionedEvent
from bridge.contracts.commands import PlaceCallCommand
from bridge.retrying import backoff_delays
from bridge.schema_registry import naming
from bridge.schema_registry.client import (
    RegistryClient,
    RegistryUnavailable,
    SchemaIncompatible,
)
from bridge.schema_registry.commands import CommandReader
from bridge.schema_registry.ids import SchemaIds
from bridge.schema_registry.wire import id_headers
from bridge.settings import SchemaSettings, TopicSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    """One schema as the registry knows it."""

    topic: str
    model: type[VersionedEvent]
    subject: str
    #: The content id (what the Confluent-compatible API answers, but in Apicurio's legacy mode).
    schema_id: int
    version: int
    #: Apicurio's global id of the version (None on other registries).
    global_id: int | None
    #: The id the Confluent-compatible API answers (what framed records carry).
    confluent_id: int

    def headers(self) -> list[tuple[str, bytes]]:
        """The id headers of records of this schema."""
        return id_headers(self.schema_id, self.global_id)


@dataclass
class RegistryMode:
    """What registry mode keeps from start: the client, the ids, the command reader."""

    client: RegistryClient
    registered: list[Registered]
    ids: SchemaIds
    commands: CommandReader

    async def close(self) -> None:
        """Close the registry client."""
        await self.client.close()


def new_client(settings: SchemaSettings) -> RegistryClient:
    """A client of the configured registry (``registry_url`` must be set)."""
    if settings.registry_url is None:
        raise ValueError("registry mode needs BRIDGE_SCHEMAS__REGISTRY_URL")
    password = settings.registry_password
    return RegistryClient(
        settings.registry_url,
        timeout=settings.request_timeout,
        username=settings.registry_username,
        password=None if password is None else password.get_secret_value(),
    )


async def register(
    client: RegistryClient, topic: str, model: type[VersionedEvent], level: str
) -> Registered:
    """Register ``model``'s schema for ``topic``; :class:`SchemaIncompatible` if refused."""
    subject = naming.subject(topic, model)
    current = await client.compatibility(subject)
    # Apicurio answers a subject without a level of its own with the global one (NONE unless
    # an operator set it), Confluent with 404: either way nothing is enforced yet.
    if current in (None, "NONE") and current != level:
        await client.set_compatibility(subject, level)
        current = level
    elif current != level:
        log.warning(
            "subject %s has compatibility %s of its own, not %s (BRIDGE_SCHEMAS__COMPATIBILITY); "
            "left as it is",
            subject,
            current,
            level,
        )
    schema = naming.registry_schema(model)
    try:
        schema_id = await client.register(subject, schema)
    except SchemaIncompatible as exc:
        raise SchemaIncompatible(
            f"the schema registry refuses {model.schema_file()} under subject {subject}: it is "
            f"not {current} compatible with the versions registered there ({exc}). A "
            "breaking change ships as a new schema version, model and topic (README "
            '"Schemas"); not starting'
        ) from None
    found = await look_up(client, topic, model)
    if found.confluent_id != schema_id:
        # A registry that numbers differently on each path is not one whose ids we can stamp.
        raise RegistryUnavailable(
            f"subject {subject}: registration answered id {schema_id}, "
            f"look-up id {found.confluent_id}"
        )
    return found


async def look_up(client: RegistryClient, topic: str, model: type[VersionedEvent]) -> Registered:
    """The ids of ``model``'s schema registered for ``topic`` (:class:`NotFound` if it is not)."""
    subject = naming.subject(topic, model)
    confluent_id, version = await client.version_of(subject, naming.registry_schema(model))
    schema_id, global_id = confluent_id, None
    apicurio = await client.apicurio_ids(subject, version)
    if apicurio is not None:
        # In Apicurio's legacy id mode its Confluent ids are global ids: the header names the
        # content id all the same.
        global_id, schema_id = apicurio
    return Registered(topic, model, subject, schema_id, version, global_id, confluent_id)


async def register_all(
    client: RegistryClient, settings: SchemaSettings, topics: TopicSettings
) -> RegistryMode:
    """Register every published schema and read the command subject's ids, once."""
    registered = [
        await register(client, topic, model, settings.compatibility)
        for topic, model in naming.published(topics)
    ]
    command_subject = naming.subject(topics.place_call, PlaceCallCommand)
    known = await client.ids_of_subject(command_subject)
    ids = SchemaIds({(r.topic, r.model.schema_id()): tuple(r.headers()) for r in registered})
    return RegistryMode(client, registered, ids, CommandReader(command_subject, known, client))


async def start_registry_mode(settings: SchemaSettings, topics: TopicSettings) -> RegistryMode:
    """Registry mode, registered; retried with backoff while the registry does not answer.

    Raises :class:`RegistryUnavailable` once ``start_timeout`` has passed, or at once
    :class:`SchemaIncompatible` / :class:`RegistryRefused` (retrying cannot change them).
    """
    client = new_client(settings)
    deadline = time.monotonic() + settings.start_timeout
    delays = backoff_delays(0.5, 8.0)
    try:
        while True:
            try:
                mode = await register_all(client, settings, topics)
            except RegistryUnavailable as exc:
                delay = next(delays)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RegistryUnavailable(
                        f"the schema registry at {client.url} did not answer within "
                        f"{settings.start_timeout:g}s (BRIDGE_SCHEMAS__START_TIMEOUT): {exc}; "
                        "not starting"
                    ) from None
                delay = min(delay, left)
                log.warning("registering schemas failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
            else:
                break
    except BaseException:
        await client.close()
        raise
    for r in mode.registered:
        log.info(
            "schema %s registered under %s: version %d, id %d%s",
            r.model.schema_file(),
            r.subject,
            r.version,
            r.schema_id,
            "" if r.global_id is None else f", global id {r.global_id}",
        )
    return mode
