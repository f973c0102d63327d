"""Connection options shared by every aiokafka client of the bridge (security, timeouts)."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import UnknownTopicOrPartitionError
from aiokafka.helpers import create_ssl_context

from bridge.kafka.live_brokers import until_live
from bridge.settings import KafkaSettings


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer``/``AIOKafkaConsumer``/admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "request_timeout_ms": settings.request_timeout_ms,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in {"SSL", "SASL_SSL"}:
        options["ssl_context"] = ssl_context(settings)
    if settings.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return options


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    """TLS context verifying brokers against ``ssl_cafile`` (or system CAs), optional mTLS."""
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.ssl_cafile,
        certfile=settings.ssl_certfile,
        keyfile=settings.ssl_keyfile,
    )
    return context


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, *, wait: float = 0.0
) -> list[TopicPartition]:
    """Partitions of ``topic`` from fresh metadata; raises when the topic does not exist.

    ``AIOKafkaConsumer.partitions_for_topic`` reads a cache that only holds subscribed topics,
    and ``topics()`` fetches metadata without updating that cache; so ask the cluster directly,
    for this one topic (the bridge forbids auto-creating it: :mod:`bridge.kafka.no_auto_create`).
    An answer that names no live broker (a fenced broker: :mod:`bridge.kafka.live_brokers`)
    counts as none; the question is asked again for up to ``wait`` seconds.
    """
    client = consumer._client
    cluster = ClusterMetadata(metadata_max_age_ms=client._metadata_max_age_ms)

    async def named() -> bool:
        return bool(await client._metadata_update(cluster, [topic]))

    await until_live(named, within=wait, what=f"reading {topic}")
    partitions = cluster.partitions_for_topic(topic)
    if not partitions:
        raise UnknownTopicOrPartitionError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, p) for p in sorted(partitions)]
