"""Fixtures: a real schema registry (Apicurio Registry 2.4.2 of ``scripts/local-registry``).

A plugin (``pytest_plugins`` in ``tests/conftest.py``): ``schema_registry``, one registry for
the whole session (its root URL alone is ``registry_url``), and ``new_registry``, a factory of
registries of a test's own (for a test that stops one). Each is an instance of its own
(``test-<pid>-<n>``) on a free port, stopped at the end: several sessions on one machine never
share one. The first start builds the registry from Maven Central jars (Java 17 + Maven, ~3
minutes), cached for every later one.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import aiohttp
import pytest

from tests.support.paths import REPO_ROOT
from tests.support.ports import free_port

LOCAL_REGISTRY = REPO_ROOT / "scripts" / "local-registry"
CCOMPAT = "/apis/ccompat/v7"
#: The content type of the Confluent Schema Registry API.
CCOMPAT_JSON = "application/vnd.schemaregistry.v1+json"
_BUSY = 5  # exit status of `local-registry start` when its port is taken
_names = itertools.count(1)


@dataclass
class Registry:
    """One running registry instance."""

    name: str
    #: Its root URL, e.g. ``http://127.0.0.1:18081``.
    url: str
    stopped: bool = False

    @property
    def ccompat_url(self) -> str:
        """The Confluent-compatible API: what ``BRIDGE_SCHEMAS__REGISTRY_URL`` is set to."""
        return self.url + CCOMPAT

    def stop(self) -> None:
        """Stop the registry (its in-memory schemas go with it)."""
        if not self.stopped:
            _run("stop", "--name", self.name)
            self.stopped = True


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LOCAL_REGISTRY), *args],
        capture_output=True, text=True, check=False, cwd=REPO_ROOT,
    )  # fmt: skip


def start_registry() -> Registry:
    """A new registry instance on a free port; ``pytest.fail`` when it does not start."""
    name = f"test-{os.getpid()}-{next(_names)}"
    for _ in range(3):  # a free port may be taken before the registry binds it
        result = _run("start", "--name", name, "--port", str(free_port()), "--timeout", "120")
        if result.returncode != _BUSY:
            break
    if result.returncode != 0:
        pytest.fail(
            f"scripts/local-registry start --name {name} failed (exit {result.returncode}):\n"
            f"{result.stderr}",
            pytrace=False,
        )
    return Registry(name, result.stdout.strip().splitlines()[-1])


def _discard(registry: Registry) -> None:
    registry.stop()
    state = os.environ.get("BRIDGE_REGISTRY_STATE", "").strip() or REPO_ROOT / ".local/registry"
    shutil.rmtree(f"{state}/{registry.name}", ignore_errors=True)


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[Registry]:
    """One registry for the session: tests keep apart by their subjects (topics are fresh)."""
    registry = start_registry()
    try:
        yield registry
    finally:
        _discard(registry)


@pytest.fixture(scope="session")
def registry_url(schema_registry: Registry) -> str:
    """Root URL of the session's registry (APIs: ``/apis/ccompat/v7``, ``/apis/registry/v2``)."""
    return schema_registry.url


def registry_mode(registry: Registry, **more: Any) -> dict[str, Any]:
    """``schemas`` settings for a bridge in registry mode against ``registry``."""
    return {"registry_url": registry.ccompat_url, "request_timeout": 2.0, **more}


RegistryFactory: TypeAlias = Callable[[], Registry]
"""Type of the ``new_registry`` fixture."""


@pytest.fixture
def new_registry() -> Iterator[RegistryFactory]:
    """Factory of registries of the test's own, stopped after the test."""
    started: list[Registry] = []

    def start() -> Registry:
        registry = start_registry()
        started.append(registry)
        return registry

    yield start
    for registry in started:
        _discard(registry)


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
