"""Where things are in the repository."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_KAFKA = REPO_ROOT / "scripts" / "local-kafka"
"""The launcher of local brokers from Maven Central jars (``scripts/local-kafka --help``)."""
