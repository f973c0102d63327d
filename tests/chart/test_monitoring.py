"""The Prometheus Operator resources: the ServiceMonitor scrapes both components on the
`admin` port (`http` without one) and the PrometheusRule alerts only on metrics the bridge
exports, from the Services the ServiceMonitor scrapes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.obs.metrics import Metrics
from tests.chart.chartlib import DEFAULT, FULL, SINGLE_PORT
from tests.chart.helmlib import NAMESPACE, Manifest, Render, kn, of_kind, one


def _scraped(manifests: list[Manifest]) -> list[Manifest]:
    """The Services the ServiceMonitor selects that have its endpoint's port."""
    monitor = one(manifests, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    return [
        service
        for service in of_kind(manifests, "Service")
        if selector.items() <= service["metadata"]["labels"].items()
        and endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    ]


def test_prometheus_rule_alerts_on_metrics_the_bridge_exports(render: Render) -> None:
    manifests = render(FULL)
    rule = one(manifests, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert "FoneStormBridgeSlowCallbacks" in alerts  # additionalRules are appended
    assert "> 5000" in alerts["FoneStormBridgeCommandBacklog"]["expr"]
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    exported = {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes[family.type]
    }
    services = {s["metadata"]["name"] for s in _scraped(manifests)}
    assert services == {"fsb-fonestorm-bridge-receiver-metrics", "fsb-fonestorm-bridge-worker"}
    for name, alert in alerts.items():
        used = set(re.findall(r"\bbridge_[a-z_]+", alert["expr"]))
        assert used, name
        assert used <= exported, (name, used - exported)
        if name != "FoneStormBridgeSlowCallbacks":
            # Scoped to this release's Services (the job label the ServiceMonitor sets).
            job = re.search(r'job=~"([^"]+)"', alert["expr"])
            assert job, name
            assert all(re.fullmatch(job.group(1), service) for service in services), name
            # ... and only those: not the receiver's public Service, which has no metrics.
            assert not re.fullmatch(job.group(1), "fsb-fonestorm-bridge-receiver"), name
            assert f'namespace="{NAMESPACE}"' in alert["expr"], name
    assert not of_kind(render(DEFAULT), "PrometheusRule")


def test_prometheus_rule_single_port(render: Render) -> None:
    """Without the admin port the receiver is scraped through its Service, as before."""
    manifests = render(SINGLE_PORT)
    services = {s["metadata"]["name"] for s in _scraped(manifests)}
    assert services == {"fsb-fonestorm-bridge-receiver", "fsb-fonestorm-bridge-worker"}
    (group,) = one(manifests, "PrometheusRule")["spec"]["groups"]
    for rule in group["rules"]:
        job = re.search(r'job=~"([^"]+)"', rule["expr"])
        assert job, rule["alert"]
        assert {s for s in services if re.fullmatch(job.group(1), s)} == services


@pytest.mark.parametrize(
    ("values", "port", "scraped"),
    [
        (FULL, "admin", ["fsb-fonestorm-bridge-receiver-metrics", "fsb-fonestorm-bridge-worker"]),
        (SINGLE_PORT, "http", ["fsb-fonestorm-bridge-receiver", "fsb-fonestorm-bridge-worker"]),
    ],
    ids=["admin-port", "single-port"],
)
def test_service_monitor_selects_both_components(
    render: Render, values: Path, port: str, scraped: list[str]
) -> None:
    manifests = render(values)
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port
    assert endpoint["path"] == "/metrics"
    services = _scraped(manifests)
    assert sorted(s["metadata"]["name"] for s in services) == scraped
    # One target set per component: every scraped Service selects one component's pods.
    components = [s["spec"]["selector"]["app.kubernetes.io/component"] for s in services]
    assert sorted(components) == ["receiver", "worker"]
    if port == "admin":
        public = one(manifests, "Service", "-receiver")
        assert port not in {p["name"] for p in public["spec"]["ports"]}, kn(public)


def test_service_monitor_settings(render: Render) -> None:
    manifests = render(FULL)
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    assert endpoint["scrapeTimeout"] == "5s"
    assert set(monitor["spec"]) <= {
        "selector",
        "namespaceSelector",
        "endpoints",
        "podTargetLabels",
        "jobLabel",
        "targetLabels",
    }


def test_worker_not_ready_alert_looks_only_at_worker_pods(render: Render) -> None:
    # Receivers export bridge_worker_ready too (always 0): without the component matcher the
    # alert fired for every receiver pod.
    (group,) = one(render(FULL), "PrometheusRule")["spec"]["groups"]
    alert = next(r for r in group["rules"] if r["alert"] == "FoneStormBridgeWorkerNotReady")
    assert 'app_kubernetes_io_component="worker"' in alert["expr"]
