"""Settings of a bridge for the outage tests, on a broker of the test's own."""

from __future__ import annotations

from typing import Any

from bridge.settings import Settings
from tests.support.dedicated_broker import Broker
from tests.support.sandbox import OURS, TOKEN


def outage_settings(
    broker: Broker, sandbox_url: str, prefix: str, **sections: dict[str, Any]
) -> Settings:
    """A bridge on ``broker`` for an outage test: one-partition topics ``<prefix>.*``, a 1 s
    produce timeout (the outage shows at once), the sandbox as FoneStorm and group ``prefix``;
    each of ``sections`` is merged over the section of that name."""
    base: dict[str, dict[str, Any]] = {
        "kafka": {
            "bootstrap_servers": broker.bootstrap,
            "produce_timeout": 1.0,
            "create_topics": True,
            "topic_partitions": 1,
        },
        "topics": {
            "call_events": f"{prefix}.events",
            "dead_letters": f"{prefix}.dlq",
            "place_call": f"{prefix}.commands",
            "place_call_results": f"{prefix}.results",
            "command_ledger": f"{prefix}.ledger",
        },
        "http": {"host": "127.0.0.1", "port": 0},
        "fonestorm": {"base_url": f"{sandbox_url}/v2", "token": TOKEN, "fonenumbers": [OURS]},
        "worker": {"group_id": prefix},
    }
    for name, values in sections.items():
        base[name] = base.get(name, {}) | values
    return Settings.model_validate(base)
