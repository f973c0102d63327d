"""How the bridge is exposed: the receiver's Service and Ingress, and the NetworkPolicies."""

from __future__ import annotations

from tests.chart.chartlib import DEFAULT, FULL
from tests.chart.helmlib import Helm, Render, component_labels, of_kind, one

# ---------------------------------------------------------------- exposure, network


def test_receiver_service_and_ingress(render: Render) -> None:
    manifests = render(FULL)
    service = one(manifests, "Service", "-receiver")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080}
    ]
    ingress = one(manifests, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["fonestorm-bridge.example.com"], "secretName": "fonestorm-bridge-tls"}
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "fonestorm-bridge.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/callbacks"
    assert path["backend"] == {
        "service": {"name": "fsb-fonestorm-bridge-receiver", "port": {"name": "http"}}
    }
    default_service = one(render(DEFAULT), "Service", "-receiver")
    assert default_service["spec"]["ports"][0]["port"] == 80
    worker = one(manifests, "Service", "-worker")
    assert worker["spec"]["clusterIP"] == "None"


def test_network_policies(render: Render) -> None:
    manifests = render(FULL)
    policies = {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m["spec"]
        for m in of_kind(manifests, "NetworkPolicy")
    }
    assert set(policies) == {"receiver", "worker"}
    test_pod_peer = {"podSelector": {"matchLabels": component_labels("test")}}
    for component, spec in policies.items():
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        (rule,) = spec["ingress"]
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
        assert test_pod_peer in rule["from"], component
        egress_ports = {
            (port["port"], port["protocol"]) for rule in spec["egress"] for port in rule["ports"]
        }
        assert {
            (53, "UDP"),
            (53, "TCP"),
            (9093, "TCP"),
            (443, "TCP"),
            (4317, "TCP"),
        } <= egress_ports
    receiver_from = policies["receiver"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    } in receiver_from


def test_receiver_ingress_open_by_default(helm: Helm) -> None:
    manifests = helm.template(DEFAULT, set_values=["networkPolicy.enabled=true"])
    receiver = one(manifests, "NetworkPolicy", "-receiver")["spec"]
    assert "from" not in receiver["ingress"][0]  # FoneStorm calls in from anywhere
    worker = one(manifests, "NetworkPolicy", "-worker")["spec"]
    assert worker["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": component_labels("test")}}
    ]
    kafka_rule = next(r for r in receiver["egress"] if r["ports"][0]["port"] == 9092)
    assert "to" not in kafka_rule
