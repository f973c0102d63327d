"""The bridge's Kafka clients never ask a broker to create a topic: set at start-up, by a call.

Importing a module of the bridge changes nothing in aiokafka; building the application or
running a command of the CLI does, once, before the first client exists.
"""

from __future__ import annotations

import subprocess
import sys

import aiokafka.client
import pytest
from aiokafka.protocol.metadata import MetadataRequest

from bridge.app import create_app
from bridge.kafka.no_auto_create import NoAutoCreateMetadataRequest, forbid_topic_auto_creation
from bridge.settings import Settings
from tests.support.paths import REPO_ROOT

# Imports every module of the bridge, then runs one CLI command that needs no broker.
_START_UP = """
import importlib, pkgutil, sys
import aiokafka.client
import bridge
from bridge.kafka.no_auto_create import NoAutoCreateMetadataRequest
for module in pkgutil.walk_packages(bridge.__path__, "bridge."):
    importlib.import_module(module.name)
print("imported:", aiokafka.client.MetadataRequest is NoAutoCreateMetadataRequest)
from bridge import cli
cli.main(["schemas", "check"])
print("started:", aiokafka.client.MetadataRequest is NoAutoCreateMetadataRequest)
"""


def test_importing_the_bridge_patches_nothing_and_the_cli_start_up_does() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _START_UP],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(("imported", "started"))]
    assert lines == ["imported: False", "started: True"]


@pytest.fixture
def unpatched(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka as it is before any start-up (the patch is restored after the test)."""
    monkeypatch.setattr(aiokafka.client, "MetadataRequest", MetadataRequest)


@pytest.mark.usefixtures("unpatched")
async def test_building_the_application_forbids_auto_creation_once() -> None:
    create_app(Settings(), receiver=False)
    assert aiokafka.client.MetadataRequest is NoAutoCreateMetadataRequest
    forbid_topic_auto_creation()  # again, as another entry point of the same process would
    create_app(Settings(), receiver=False)
    assert aiokafka.client.MetadataRequest is NoAutoCreateMetadataRequest
