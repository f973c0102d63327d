"""Fixtures of the chart tests: the real Helm CLI and cached renders of the chart.

Helm is built once by ``scripts/helm-tools install`` (``go install`` through the Go module
proxy, a few minutes the first time, then cached under ~/.cache/fonestorm-bridge). The build
runs when collection is done, before any test starts, so it never counts against a test's
timeout; ``make test`` runs the script before pytest anyway. ``BRIDGE_HELM=/path/to/helm``
uses another binary instead.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.chart.helmlib import MAX_KUBE, Helm, Manifest, Render, install_helm

_helm: dict[str, str] = {}


def _needs_helm(session: pytest.Session) -> bool:
    return any("helm" in getattr(item, "fixturenames", ()) for item in session.items)


def pytest_collection_finish(session: pytest.Session) -> None:
    if not _needs_helm(session) or _helm:
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    try:
        # Let the build's progress reach the terminal: the first one takes minutes.
        if capture is None:
            _helm["binary"] = install_helm()
        else:
            with capture.global_and_fixture_disabled():
                _helm["binary"] = install_helm()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        _helm["error"] = f"scripts/helm-tools install failed: {exc}"


@pytest.fixture(scope="session")
def helm() -> Helm:
    if "binary" not in _helm:
        # Collection-time install did not run (e.g. a plugin reordered things): do it now.
        try:
            _helm["binary"] = install_helm()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            _helm["error"] = f"scripts/helm-tools install failed: {exc}"
            pytest.fail(_helm["error"])
    return Helm(_helm["binary"])


@pytest.fixture(scope="session")
def render(helm: Helm) -> Render:
    """``render(*values_files, kube_version=...)``: parsed manifests, cached per arguments."""
    cache: dict[tuple[tuple[Path, ...], str], list[Manifest]] = {}

    def _render(*values_files: Path, kube_version: str = MAX_KUBE) -> list[Manifest]:
        key = (values_files, kube_version)
        if key not in cache:
            cache[key] = helm.template(*values_files, kube_version=kube_version)
        return cache[key]

    return _render
