"""The published contracts: versioned event and command models, and their JSON Schemas.

Pure data (pydantic); imports nothing of the bridge but `bridge.errors`, and never aiokafka.
"""
