"""The chart renders and lints with the real Helm engine; its manifests are valid for the
Kubernetes API schemas (offline) of every supported version and carry the standard labels.
"""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest

from tests.chart.chartlib import (
    ALL_IDS,
    ALL_VALUES,
    APP_VERSION,
    CHART_LABEL,
    CI_IDS,
    DEFAULT,
    FULL,
    values_of,
)
from tests.chart.helmlib import (
    CHART_DIR,
    HELM_VERSION,
    MAX_KUBE,
    MIN_KUBE,
    NAMESPACE,
    RELEASE,
    SLEEP_ACTION_KUBE,
    Helm,
    HelmError,
    Manifest,
    Render,
    component_labels,
    kn,
    of_kind,
    one,
    pod_specs,
)

#: Kinds that are CustomResources: not in the Kubernetes API schemas.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "KafkaTopic"}


# ---------------------------------------------------------------- helm itself


def test_helm_is_the_pinned_release(helm: Helm) -> None:
    assert helm.version() == HELM_VERSION


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_lint_strict(helm: Helm, values: Path) -> None:
    out = helm.lint(values)
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out
    assert "[WARNING]" not in out, out


def test_lint_strict_without_values_file(helm: Helm) -> None:
    # Lint mode makes `fail` non-fatal (Helm logs it), so the bare chart lints even though
    # rendering it refuses the missing callback credentials.
    out = helm.lint(kube_version=MIN_KUBE)
    assert "0 chart(s) failed" in out, out


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_template_renders(render: Render, values: Path) -> None:
    manifests = render(values)
    kinds = {m["kind"] for m in manifests}
    assert {"ConfigMap", "ServiceAccount", "Deployment", "Service", "Pod"} <= kinds
    for manifest in manifests:
        assert manifest["metadata"]["name"], kn(manifest)
        assert manifest["metadata"]["namespace"] == NAMESPACE, kn(manifest)
        assert len(manifest["metadata"]["name"]) <= 63, kn(manifest)


def test_default_render_contents(render: Render) -> None:
    manifests = render(DEFAULT)
    names = sorted(kn(m) for m in manifests)
    assert names == sorted(
        [
            "ConfigMap/fsb-fonestorm-bridge",
            "Deployment/fsb-fonestorm-bridge-receiver",
            "Deployment/fsb-fonestorm-bridge-worker",
            "NetworkPolicy/fsb-fonestorm-bridge-receiver",
            "NetworkPolicy/fsb-fonestorm-bridge-worker",
            "PodDisruptionBudget/fsb-fonestorm-bridge-receiver",
            "PodDisruptionBudget/fsb-fonestorm-bridge-worker",
            "Pod/fsb-fonestorm-bridge-test-readyz",
            "Secret/fsb-fonestorm-bridge-callbacks",
            "Service/fsb-fonestorm-bridge-receiver",
            "Service/fsb-fonestorm-bridge-receiver-metrics",
            "Service/fsb-fonestorm-bridge-worker",
            "ServiceAccount/fsb-fonestorm-bridge",
        ]
    )
    receiver = one(manifests, "Deployment", "-receiver")
    assert receiver["spec"]["replicas"] == 2
    assert receiver["spec"]["template"]["spec"]["containers"][0]["args"] == ["receiver"]
    worker = one(manifests, "Deployment", "-worker")
    assert worker["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]
    assert sorted(one(manifests, "Secret")["data"]) == ["callbacks-password", "callbacks-username"]


def test_ci_values_cover_the_required_scenarios() -> None:
    assert {"default", "full", "worker-only"} <= set(CI_IDS)
    # The chart defaults but for the callback credentials they cannot do without.
    assert values_of(DEFAULT) == {
        "secrets": {
            "callbacks": {"username": "ci-fonestorm", "password": "ci-callback-password"},
        }
    }


# ---------------------------------------------------------------- Kubernetes API schemas


def _validate_all(manifests: list[Manifest], kube_version: str) -> None:
    for manifest in manifests:
        if manifest["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{kn(manifest)} invalid for Kubernetes {kube_version} at {path}: {exc}")


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_manifests_match_newest_kubernetes_schemas(render: Render, values: Path) -> None:
    _validate_all(render(values, kube_version=MAX_KUBE), MAX_KUBE)


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_manifests_match_oldest_supported_kubernetes_schemas(render: Render, values: Path) -> None:
    # The full values use the `sleep` preStop action, which needs 1.30.
    kube = SLEEP_ACTION_KUBE if values == FULL else MIN_KUBE
    _validate_all(render(values, kube_version=kube), kube)


def test_sleep_action_refused_before_kubernetes_1_30(helm: Helm) -> None:
    with pytest.raises(HelmError, match=r"needs Kubernetes >= 1\.30"):
        helm.template(FULL, kube_version="1.29.0")


def test_kube_version_below_chart_minimum_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError, match="kubeVersion"):
        helm.template(DEFAULT, kube_version="1.24.0")


# ---------------------------------------------------------------- labels


def test_labels_come_from_helpers() -> None:
    """Standard labels are spelled out only in _helpers.tpl; every resource includes them."""
    literal = re.compile(r"app\.kubernetes\.io/(name|instance|version|managed-by):|helm\.sh/chart:")
    templates = sorted((CHART_DIR / "templates").rglob("*.yaml"))
    assert len(templates) >= 12
    for template in templates:
        text = template.read_text(encoding="utf-8")
        assert not literal.search(text), template.name
        assert re.search(
            r'include "fonestorm-bridge\.(labels|componentLabels|deployment)"', text
        ), template.name
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    for label in ("name", "instance", "version", "managed-by", "component"):
        assert f"app.kubernetes.io/{label}:" in helpers
    assert "helm.sh/chart:" in helpers


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_standard_labels_everywhere(render: Render, values: Path) -> None:
    manifests = render(values)
    for manifest in manifests:
        labels = manifest["metadata"]["labels"]
        where = kn(manifest)
        assert labels["helm.sh/chart"] == CHART_LABEL, where
        assert labels["app.kubernetes.io/name"] == "fonestorm-bridge", where
        assert labels["app.kubernetes.io/instance"] == RELEASE, where
        assert labels["app.kubernetes.io/version"] == APP_VERSION, where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        if manifest["kind"] not in {
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "ServiceMonitor",
            "PrometheusRule",
            "KafkaTopic",
        }:
            assert labels["app.kubernetes.io/component"] in {"receiver", "worker", "test"}, where


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_selectors_match_pods(render: Render, values: Path) -> None:
    manifests = render(values)
    pods = {
        m["metadata"]["name"].rsplit("-", 1)[1]: m["spec"]["template"]["metadata"]["labels"]
        for m in of_kind(manifests, "Deployment")
    }
    for deployment in of_kind(manifests, "Deployment"):
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector == component_labels(component)
        assert selector.items() <= pods[component].items()
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
        for manifest in of_kind(manifests, kind):
            component = manifest["metadata"]["labels"]["app.kubernetes.io/component"]
            selector = (
                manifest["spec"]["selector"]
                if kind == "Service"
                else manifest["spec"][
                    "selector" if kind == "PodDisruptionBudget" else "podSelector"
                ]["matchLabels"]
            )
            assert selector == component_labels(component), kn(manifest)
    for name, spec in pod_specs(manifests):
        for constraint in spec.get("topologySpreadConstraints", []):
            assert constraint["labelSelector"]["matchLabels"], name


def test_common_labels_and_overrides(helm: Helm) -> None:
    manifests = helm.template(
        DEFAULT, set_values=["fullnameOverride=bridge", "commonLabels.team=voice"]
    )
    for manifest in manifests:
        assert manifest["metadata"]["name"].startswith("bridge"), kn(manifest)
        assert manifest["metadata"]["labels"]["team"] == "voice", kn(manifest)


def test_extra_env_reaches_every_bridge_container(helm: Helm) -> None:
    # How tracing is turned on in Kubernetes: the standard OTEL_* variables, through extraEnv.
    manifests = helm.template(
        DEFAULT,
        set_values=[
            "extraEnv[0].name=OTEL_EXPORTER_OTLP_ENDPOINT",
            "extraEnv[0].value=http://otel-collector:4318",
        ],
    )
    deployments = of_kind(manifests, "Deployment")
    assert deployments
    for deployment in deployments:
        (bridge,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item for item in bridge.get("env", [])}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector:4318"
