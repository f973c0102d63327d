"""Kafka plumbing: client options, the acks=all publisher, partitioner, CloudEvents headers, topics.

May import `bridge.contracts`, `bridge.obs` and the shared modules (`bridge.settings`, ...).
Importing it changes nothing: every entry point that makes Kafka clients calls
:func:`bridge.kafka.no_auto_create.forbid_topic_auto_creation` and
:func:`bridge.kafka.lenient_records.read_any_header_name` at start-up.
"""
