"""Values files, constants and helpers shared by the chart test modules (``test_*.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bridge.settings import HttpSettings
from tests.chart.helmlib import CHART_DIR, CI_VALUES, TEST_VALUES, Manifest, one

SENTINEL_VALUES = TEST_VALUES / "secret-sentinels-values.yaml"
#: No callback credentials, `config.callbacks.allowUnauthenticated: true` (the opt-out).
UNAUTHENTICATED = TEST_VALUES / "unauthenticated-values.yaml"
#: `config.http.adminPort: null`: everything on the callback port, as before the admin port.
SINGLE_PORT = TEST_VALUES / "single-port-values.yaml"
ALL_VALUES = [*CI_VALUES, SENTINEL_VALUES, UNAUTHENTICATED, SINGLE_PORT]
CI_IDS = [path.name.removesuffix("-values.yaml") for path in CI_VALUES]
ALL_IDS = [path.name.removesuffix("-values.yaml") for path in ALL_VALUES]
FULL = CHART_DIR / "ci" / "full-values.yaml"
WORKER_ONLY = CHART_DIR / "ci" / "worker-only-values.yaml"
#: The chart defaults plus literal callback credentials, which the chart cannot do without.
DEFAULT = CHART_DIR / "ci" / "default-values.yaml"

_CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
#: ``helm.sh/chart`` of every manifest: the chart's name and version.
CHART_LABEL = f"{_CHART['name']}-{_CHART['version']}"
#: The image tag and ``app.kubernetes.io/version`` the chart defaults to.
APP_VERSION = str(_CHART["appVersion"])

#: Settings that are secrets: never in a ConfigMap or an env ``value:``.
SECRET_ENV = {
    "BRIDGE_FONESTORM__TOKEN",
    "BRIDGE_CALLBACKS__USERNAME",
    "BRIDGE_CALLBACKS__PASSWORD",
    "BRIDGE_KAFKA__SASL_USERNAME",
    "BRIDGE_KAFKA__SASL_PASSWORD",
    "BRIDGE_DEAD_LETTERS__CALLBACK_SIGNING_KEY",
    "BRIDGE_DEAD_LETTERS__COMMAND_SIGNING_KEY",
    "BRIDGE_SCHEMAS__REGISTRY_USERNAME",
    "BRIDGE_SCHEMAS__REGISTRY_PASSWORD",
}


def values_of(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def configmap_data(manifests: list[Manifest]) -> dict[str, str]:
    return one(manifests, "ConfigMap")["data"] or {}


def http_ports(manifests: list[Manifest]) -> tuple[int, int | None]:
    """(callback port, admin port or None) the rendered ConfigMap gives the bridge (an empty
    admin port overrides the image's default: none)."""
    data = configmap_data(manifests)
    admin = data.get("BRIDGE_HTTP__ADMIN_PORT")
    return int(data.get("BRIDGE_HTTP__PORT", HttpSettings().port)), (int(admin) if admin else None)
