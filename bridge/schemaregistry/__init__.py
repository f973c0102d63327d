"""Registry mode: the bridge's schemas in a Confluent-compatible schema registry."""
