"""Metadata requests that never ask the broker to create a topic.

aiokafka builds every metadata request with ``allow_auto_topic_creation`` left unset, which the
protocol (v4+) reads as *true*: on a cluster with ``auto.create.topics.enable=true`` (Apache
Kafka's default) a producer that merely looks up ``call-events`` creates it, with the broker's
default partitions and configuration instead of the bridge's. aiokafka has no option for it
(0.14 reads ``MetadataRequest`` from ``aiokafka.client``'s globals), so the bridge swaps in a
request class whose default is *false*, for every client in the process: each entry point that
makes clients (the application, the command line, the tests and benchmarks) calls
:func:`forbid_topic_auto_creation` at start-up, before its first client exists.
"""

from __future__ import annotations

import aiokafka.client
from aiokafka.protocol.metadata import MetadataRequest


class NoAutoCreateMetadataRequest(MetadataRequest):  # type: ignore[misc]
    """``MetadataRequest`` that asks the broker not to create the topics it names."""

    def __init__(
        self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = False
    ) -> None:
        super().__init__(topics, allow_auto_topic_creation)


def forbid_topic_auto_creation() -> None:
    """Make every aiokafka client in this process ask for metadata without auto-creation.

    For start-up, before any client exists; calling it again changes nothing.
    """
    if getattr(aiokafka.client, "MetadataRequest", None) is NoAutoCreateMetadataRequest:
        return
    if not hasattr(aiokafka.client, "MetadataRequest"):
        # A future aiokafka that moved it: fail loudly rather than create topics silently.
        raise RuntimeError("aiokafka.client.MetadataRequest is gone; update no_auto_create.py")
    aiokafka.client.MetadataRequest = NoAutoCreateMetadataRequest
