"""The Prometheus Operator resources: the ServiceMonitor scrapes both Services and the
PrometheusRule alerts only on metrics the bridge exports.
"""

from __future__ import annotations

import re

from bridge.obs.metrics import Metrics
from tests.chart.chartlib import DEFAULT, FULL
from tests.chart.helmlib import NAMESPACE, Render, kn, of_kind, one


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
    services = {s["metadata"]["name"] for s in of_kind(manifests, "Service")}
    for name, alert in alerts.items():
        used = set(re.findall(r"\bbridge_[a-z_]+", alert["expr"]))
        assert used, name
        assert used <= exported, (name, used - exported)
        if name != "FoneStormBridgeSlowCallbacks":
            # Scoped to this release's Services (the job label the ServiceMonitor sets).
            job = re.search(r'job=~"([^"]+)"', alert["expr"])
            assert job, name
            assert all(re.fullmatch(job.group(1), service) for service in services), name
            assert f'namespace="{NAMESPACE}"' in alert["expr"], name
    assert not of_kind(render(DEFAULT), "PrometheusRule")


def test_service_monitor_selects_both_services(render: Render) -> None:
    manifests = render(FULL)
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    services = of_kind(manifests, "Service")
    assert len(services) == 2
    for service in services:
        assert selector.items() <= service["metadata"]["labels"].items(), kn(service)
        port_names = {port["name"] for port in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names, kn(service)
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
