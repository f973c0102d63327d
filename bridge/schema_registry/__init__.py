"""Registry mode: the bridge's schemas in a Confluent-compatible schema registry.

Registers the published schemas at start, keeps their ids for the records the bridge writes,
and reads the schema id of a framed command. Imports only the contracts and the shared modules.
"""
