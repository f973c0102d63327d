"""Bridge settings for brokers that want SASL or TLS."""

from __future__ import annotations

import uuid

from bridge.settings import Settings


def secured_settings(**kafka: object) -> Settings:
    """Receiver settings on fresh topics, with these Kafka connection settings."""
    suffix = uuid.uuid4().hex[:8]
    return Settings.model_validate(
        {
            "kafka": {"create_topics": True, "topic_partitions": 1, "produce_timeout": 3.0}
            | kafka,
            "topics": {"call_events": f"events-{suffix}", "dead_letters": f"dlq-{suffix}",
                       "place_call_results": f"results-{suffix}"},
            "http": {"host": "127.0.0.1", "port": 0},
            "callbacks": {"allow_unauthenticated": True},
        }
    )  # fmt: skip
