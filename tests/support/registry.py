"""Fixture: one real schema registry (Apicurio Registry 2.4.2) per test session, and a few calls
of its Confluent-compatible API.

A plugin (``pytest_plugins`` in ``tests/conftest.py``): the session fixture ``registry_url``,
the registry's base URL (``<url>/apis/ccompat/v7`` is the Confluent-compatible API,
``<url>/apis/registry/v2`` Apicurio's own).

``BRIDGE_TEST_REGISTRY`` set: that registry's base URL, used as is. Otherwise
``scripts/local-registry`` starts a private instance (``test-<pid>``, a free port, state in the
session's temporary folder) and stops it at session end; it is in-memory, so every session
starts with an empty registry. The first start on a machine builds it (about 3 minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import aiohttp
import pytest

from tests.support.paths import REPO_ROOT
from tests.support.ports import free_port

LOCAL_REGISTRY = REPO_ROOT / "scripts" / "local-registry"
CCOMPAT = "/apis/ccompat/v7"
#: The content type of the Confluent Schema Registry API.
CCOMPAT_JSON = "application/vnd.schemaregistry.v1+json"
_LOCAL_REGISTRY_BUSY = 5  # exit code of `local-registry start`: the port was taken


@pytest.fixture(scope="session")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real, initially empty Apicurio Registry for the whole session."""
    external = os.environ.get("BRIDGE_TEST_REGISTRY", "").strip()
    if external:
        yield external.rstrip("/")
        return
    name = f"test-{os.getpid()}"
    env = {**os.environ, "BRIDGE_REGISTRY_STATE": str(tmp_path_factory.mktemp("registry"))}

    def local_registry(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(LOCAL_REGISTRY), *args, "--name", name],
            capture_output=True, text=True, check=False, cwd=REPO_ROOT, env=env,
        )  # fmt: skip

    for _ in range(3):  # a free port may be taken before the registry binds it
        result = local_registry("start", "--port", str(free_port()))
        if result.returncode != _LOCAL_REGISTRY_BUSY:
            break
    try:
        if result.returncode != 0:
            pytest.fail(
                f"scripts/local-registry start --name {name} failed "
                f"(exit {result.returncode}):\n{result.stderr}",
                pytrace=False,
            )
        yield result.stdout.strip().splitlines()[-1]
    finally:
        local_registry("stop")


async def register_schema(
    http: aiohttp.ClientSession, registry_url: str, subject: str, schema: str
) -> int:
    """Register JSON Schema text under ``subject`` (``POST /subjects/{s}/versions``); returns
    the id the registry answers (the same id again for content already registered)."""
    body = {"schema": schema, "schemaType": "JSON"}
    async with http.post(
        f"{registry_url}{CCOMPAT}/subjects/{subject}/versions",
        data=json.dumps(body),
        headers={"Content-Type": CCOMPAT_JSON},
    ) as response:
        answer = await response.json(content_type=None)
        if response.status != 200:
            raise AssertionError(f"registering {subject}: HTTP {response.status} {answer!r}")
    return int(answer["id"])


async def schema_by_id(http: aiohttp.ClientSession, registry_url: str, schema_id: int) -> str:
    """The schema text the registry serves for ``schema_id`` (``GET /schemas/ids/{id}``)."""
    async with http.get(f"{registry_url}{CCOMPAT}/schemas/ids/{schema_id}") as response:
        answer = await response.json(content_type=None)
        if response.status != 200:
            raise AssertionError(f"schema id {schema_id}: HTTP {response.status} {answer!r}")
    return str(answer["schema"])
