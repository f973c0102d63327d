"""Fixture ``spans``: the bridge's tracing on for one test, its spans kept in memory.

A plugin (``pytest_plugins`` in ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bridge.obs import tracing


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing set up with an in-memory exporter; shut down after the test."""
    exporter = InMemorySpanExporter()
    tracing.setup(exporter)
    yield exporter
    tracing.shutdown()
