"""Admin round trips for the topic plan: count brokers, create topics, read what topics are."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from bridge.kafka.topic_plan import TopicSpec, TopicState


async def broker_count(admin: AIOKafkaAdminClient) -> int:
    """How many brokers the cluster's metadata lists."""
    cluster = await admin.describe_cluster()
    return len(cluster["brokers"])


async def create_topics(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> list[str]:
    """Create ``specs``; the names created (one that already exists is not an error)."""
    if not specs:
        return []
    new = [
        NewTopic(
            name=spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            topic_configs=dict(spec.configs),
        )
        for spec in specs
    ]
    response = await admin.create_topics(new)
    created = []
    for name, code, *_ in response.topic_errors:
        # Already-exists means another replica (or operator) won the race: fine.
        if code == 0:
            created.append(name)
        elif code != TopicAlreadyExistsError.errno:
            raise KafkaError(f"cannot create topic {name!r}: error code {code}")
    return created


async def wait_for_topics(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Until every partition of ``names`` has a leader in the metadata the broker serves.

    A broker publishes a new topic to its metadata a moment after CreateTopics returns; a client
    asking meanwhile would find it missing. Callers bound the wait (``asyncio.timeout``).
    """
    pending = list(names)
    while pending:
        topics = await admin.describe_topics(pending)
        ready = {
            topic["topic"]
            for topic in topics
            if topic["error_code"] == 0
            and topic["partitions"]
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in topic["partitions"])
        }
        pending = [name for name in pending if name not in ready]
        if pending:
            await asyncio.sleep(0.1)


async def describe_topics(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, TopicState]:
    """What the cluster has of ``names``: partitions, replication factor, effective configs.

    A topic that does not exist is left out, and so is one the broker asked has not learnt of
    yet (it was created a moment ago).
    """
    existing = set(await admin.list_topics())
    present = [name for name in names if name in existing]
    if not present:
        return {}
    metadata = {topic["topic"]: topic for topic in await admin.describe_topics(present)}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in present]
    )
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"] == UnknownTopicOrPartitionError.errno:
                continue
            if resource["error_code"] != 0:
                raise KafkaError(
                    f"cannot describe the configs of topic {resource['resource_name']!r}: "
                    f"error code {resource['error_code']} {resource['error_message']}"
                )
            configs[resource["resource_name"]] = {
                entry["config_names"]: entry["config_value"]
                for entry in resource["config_entries"]
                if entry["config_value"] is not None
            }
    return {
        name: _state(name, metadata[name], configs[name])
        for name in present
        if name in configs
        and name in metadata
        and metadata[name]["error_code"] != UnknownTopicOrPartitionError.errno
    }


def _state(name: str, metadata: dict[str, Any], configs: dict[str, str]) -> TopicState:
    partitions = metadata["partitions"]
    if metadata["error_code"] != 0:
        raise KafkaError(f"cannot describe topic {name!r}: error code {metadata['error_code']}")
    # The smallest replica set: a partition with fewer replicas is what the drift is about.
    replicas = min((len(p["replicas"]) for p in partitions), default=0)
    return TopicState(name, len(partitions), replicas, configs)
