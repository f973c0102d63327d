"""Kafka plumbing: client options, the acks=all publisher, partitioner, CloudEvents headers, topics.

May import `bridge.contracts`, `bridge.obs`, `bridge.settings` and `bridge.errors`.
"""
