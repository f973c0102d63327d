"""Kafka plumbing: client options, the acks=all publisher, partitioner, CloudEvents headers, topics.

May import `bridge.contracts`, `bridge.obs` and the shared modules (`bridge.settings`, ...).
"""

from bridge.kafka.no_auto_create import forbid_topic_auto_creation

# Before any client exists: topics are created by the bridge's own settings or by an operator.
forbid_topic_auto_creation()
