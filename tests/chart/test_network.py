"""How the bridge is exposed: the receiver's Service and Ingress carry only the callback port,
the `admin` port (/healthz, /readyz, /metrics) stays on headless Services, and the
NetworkPolicies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.chartlib import ALL_IDS, ALL_VALUES, DEFAULT, FULL, SINGLE_PORT, http_ports
from tests.chart.helmlib import (
    Helm,
    Manifest,
    Render,
    component_labels,
    kn,
    of_kind,
    one,
)

RECEIVER = "fsb-fonestorm-bridge-receiver"
RECEIVER_METRICS = "fsb-fonestorm-bridge-receiver-metrics"
WORKER = "fsb-fonestorm-bridge-worker"
TEST_POD_PEER = {"podSelector": {"matchLabels": component_labels("test")}}

# ---------------------------------------------------------------- exposure


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
    assert path["backend"] == {"service": {"name": RECEIVER, "port": {"name": "http"}}}
    default_service = one(render(DEFAULT), "Service", "-receiver")
    assert default_service["spec"]["ports"][0]["port"] == 80
    worker = one(manifests, "Service", "-worker")
    assert worker["spec"]["clusterIP"] == "None"


def _services(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in of_kind(manifests, "Service")}


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_public_receiver_exposes_only_the_callback_port(render: Render, values: Path) -> None:
    """Whatever reaches the receiver from outside (its Service, possibly a LoadBalancer, and
    the Ingress) gets the `http` port: never `admin`, by name or by number."""
    manifests = render(values)
    port, admin = http_ports(manifests)
    services = _services(manifests)
    if RECEIVER not in services:
        assert not of_kind(manifests, "Ingress")
        return
    (entry,) = services[RECEIVER]["spec"]["ports"]
    assert entry["name"] == "http"
    assert entry["targetPort"] == "http"
    assert admin is None or admin not in {entry["port"], entry.get("nodePort")}
    for ingress in of_kind(manifests, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"] == {
                    "service": {"name": RECEIVER, "port": {"name": "http"}}
                }, kn(ingress)
    for deployment in of_kind(manifests, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        http = next(p for p in container["ports"] if p["name"] == "http")
        assert http["containerPort"] == port, kn(deployment)


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_admin_port_only_on_headless_services(render: Render, values: Path) -> None:
    manifests = render(values)
    _, admin = http_ports(manifests)
    services = _services(manifests)
    receiver_on = any(m["metadata"]["name"] == RECEIVER for m in of_kind(manifests, "Deployment"))
    expect_metrics = receiver_on and admin is not None
    assert (RECEIVER_METRICS in services) == expect_metrics
    for name, service in services.items():
        admin_entries = [p for p in service["spec"]["ports"] if p["name"] == "admin"]
        if name == RECEIVER:
            assert not admin_entries
            continue
        assert service["spec"]["clusterIP"] == "None", name  # cluster-internal, no VIP
        assert service["spec"]["type"] == "ClusterIP", name
        if admin is None:
            assert not admin_entries, name
        else:
            assert admin_entries == [
                {"name": "admin", "port": admin, "targetPort": "admin", "protocol": "TCP"}
            ], name
    if expect_metrics:
        metrics = services[RECEIVER_METRICS]
        assert metrics["spec"]["ports"] == [
            {"name": "admin", "port": admin, "targetPort": "admin", "protocol": "TCP"}
        ]
        assert metrics["spec"]["selector"] == component_labels("receiver")
        assert metrics["metadata"]["labels"]["app.kubernetes.io/component"] == "receiver"


def test_long_names_stay_valid_and_distinct(helm: Helm) -> None:
    manifests = helm.template(DEFAULT, set_values=["fullnameOverride=" + "b" * 60])
    names = [m["metadata"]["name"] for m in of_kind(manifests, "Service")]
    assert len(names) == 3
    assert len(set(names)) == 3
    assert all(len(name) <= 63 and not name.endswith("-") for name in names), names


# ---------------------------------------------------------------- network policies


def _policies(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m["spec"]
        for m in of_kind(manifests, "NetworkPolicy")
    }


def _ports(rule: Manifest) -> list[str]:
    return [port["port"] for port in rule["ports"]]


def test_network_policies(render: Render) -> None:
    manifests = render(FULL)
    policies = _policies(manifests)
    assert set(policies) == {"receiver", "worker"}
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    for component, spec in policies.items():
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        for rule in spec["ingress"]:
            assert all(port["protocol"] == "TCP" for port in rule["ports"]), component
        egress_ports = {
            (port["port"], port["protocol"]) for rule in spec["egress"] for port in rule["ports"]
        }
        # DNS, Kafka and the extra rule (an OTLP collector) for both; FoneStorm for the worker.
        expected = {(53, "UDP"), (53, "TCP"), (9093, "TCP"), (4317, "TCP")}
        if component == "worker":
            expected.add((443, "TCP"))
        assert egress_ports == expected, component
    kafka = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}}
    for component in ("receiver", "worker"):
        assert _egress_to(policies[component], 9093) == [kafka]
    # Receiver: the callback rule as before the admin port, and the admin port for scrapers.
    callbacks, scraping = policies["receiver"]["ingress"]
    assert _ports(callbacks) == ["http"]
    assert callbacks["from"] == [
        TEST_POD_PEER,
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
    ]
    assert _ports(scraping) == ["admin"]
    assert scraping["from"] == [TEST_POD_PEER, prometheus]
    # Worker: its one rule covers both ports, for the same peers.
    (worker,) = policies["worker"]["ingress"]
    assert _ports(worker) == ["http", "admin"]
    assert worker["from"] == [TEST_POD_PEER, prometheus]


def test_receiver_ingress_open_by_default(render: Render) -> None:
    manifests = render(DEFAULT)
    receiver = one(manifests, "NetworkPolicy", "-receiver")["spec"]
    callbacks, scraping = receiver["ingress"]
    assert _ports(callbacks) == ["http"]
    assert "from" not in callbacks  # FoneStorm calls in from anywhere
    # ... but not to /metrics and /readyz: only the `helm test` pod (no scraper listed yet).
    assert _ports(scraping) == ["admin"]
    assert scraping["from"] == [TEST_POD_PEER]
    worker = one(manifests, "NetworkPolicy", "-worker")["spec"]
    (rule,) = worker["ingress"]
    assert _ports(rule) == ["http", "admin"]
    assert rule["from"] == [TEST_POD_PEER]
    kafka_rule = next(r for r in receiver["egress"] if r["ports"][0]["port"] == 9092)
    assert "to" not in kafka_rule


def _egress_to(spec: Manifest, port: int) -> list[Manifest] | None:
    """The peers of the egress rule that opens ``port`` (None: any destination)."""
    (rule,) = [r for r in spec["egress"] if any(p["port"] == port for p in r["ports"])]
    peers: list[Manifest] | None = rule.get("to")
    return peers


DNS_PORTS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
KUBE_DNS = [
    {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
]
KAFKA_PORTS = [{"port": 9092, "protocol": "TCP"}, {"port": 9093, "protocol": "TCP"}]
PUBLIC_INTERNET = [
    {
        "ipBlock": {
            "cidr": "0.0.0.0/0",
            "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
        }
    }
]


def test_network_policies_are_on_by_default(render: Render, helm: Helm) -> None:
    """The chart defaults (plus the callback credentials) lock both components down: the
    receiver takes callbacks from anyone and scraping only on `admin`, and reaches DNS and
    Kafka and nothing else; only the worker may reach FoneStorm (HTTPS)."""
    policies = _policies(render(DEFAULT))
    assert set(policies) == {"receiver", "worker"}
    receiver, worker = policies["receiver"], policies["worker"]
    for spec in (receiver, worker):
        assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert receiver["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}]},
        {"ports": [{"port": "admin", "protocol": "TCP"}], "from": [TEST_POD_PEER]},
    ]
    assert receiver["egress"] == [
        {"ports": DNS_PORTS, "to": KUBE_DNS},
        {"ports": KAFKA_PORTS},
    ]
    assert worker["egress"] == [
        {"ports": DNS_PORTS, "to": KUBE_DNS},
        {"ports": KAFKA_PORTS},
        {"ports": [{"port": 443, "protocol": "TCP"}], "to": PUBLIC_INTERNET},
    ]
    off = helm.template(DEFAULT, set_values=["networkPolicy.enabled=false"])
    assert not of_kind(off, "NetworkPolicy")


def test_fonestorm_egress_is_the_workers_alone(helm: Helm) -> None:
    """Narrowed to FoneStorm's addresses and the brokers' CIDR, the worker gets exactly those;
    the receiver still gets no rule to FoneStorm."""
    manifests = helm.template(
        DEFAULT,
        set_values=[
            "networkPolicy.fonestorm.to[0].ipBlock.cidr=203.0.113.0/24",
            "networkPolicy.kafka.to[0].ipBlock.cidr=10.1.0.0/16",
            "networkPolicy.kafka.ports={9094}",
        ],
    )
    policies = _policies(manifests)
    brokers = [{"ipBlock": {"cidr": "10.1.0.0/16"}}]
    assert policies["worker"]["egress"][1:] == [
        {"ports": [{"port": 9094, "protocol": "TCP"}], "to": brokers},
        {
            "ports": [{"port": 443, "protocol": "TCP"}],
            "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
        },
    ]
    assert policies["receiver"]["egress"][1:] == [
        {"ports": [{"port": 9094, "protocol": "TCP"}], "to": brokers},
    ]
    off = _policies(helm.template(DEFAULT, set_values=["networkPolicy.fonestorm.enabled=false"]))
    assert all(p["port"] != 443 for r in off["worker"]["egress"] for p in r["ports"])


def test_network_policies_single_port(render: Render) -> None:
    """`config.http.adminPort: null`: one rule per component on `http`, as before."""
    policies = _policies(render(SINGLE_PORT))
    (receiver,) = policies["receiver"]["ingress"]
    assert receiver == {"ports": [{"port": "http", "protocol": "TCP"}]}
    (worker,) = policies["worker"]["ingress"]
    assert worker == {
        "ports": [{"port": "http", "protocol": "TCP"}],
        "from": [
            TEST_POD_PEER,
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
        ],
    }
