"""Pods' lifecycle: probes, shutdown timing (preStop + graceful shutdown within the grace
period), rollout on config/secret change, image reference, autoscaling and disruption budgets.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.settings import REVOKE_SHARE, HttpSettings, WorkerSettings
from tests.chart.chartlib import (
    ALL_IDS,
    ALL_VALUES,
    APP_VERSION,
    DEFAULT,
    FULL,
    SENTINEL_VALUES,
    SINGLE_PORT,
    WORKER_ONLY,
    configmap_data,
    http_ports,
    values_of,
)
from tests.chart.helmlib import (
    CHART_DIR,
    Helm,
    HelmError,
    Manifest,
    Render,
    env_of,
    kn,
    of_kind,
    one,
)

# ---------------------------------------------------------------- probes, shutdown, rollout


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_probes(render: Render, values: Path) -> None:
    """Both components: `http` is the callback port; with an admin port the probes use it."""
    manifests = render(values)
    port, admin = http_ports(manifests)
    expected = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    if admin is not None:
        expected.append({"name": "admin", "containerPort": admin, "protocol": "TCP"})
    probe_port = "http" if admin is None else "admin"
    deployments = of_kind(manifests, "Deployment")
    assert deployments
    for deployment in deployments:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == expected, kn(deployment)
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": probe_port}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": probe_port}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": probe_port}
        assert container["envFrom"] == [{"configMapRef": {"name": "fsb-fonestorm-bridge"}}]


def test_admin_port_on_by_default(render: Render) -> None:
    """Secure by default: the chart's own values put the operations endpoints apart."""
    assert http_ports(render(DEFAULT)) == (HttpSettings().port, 9090)
    assert http_ports(render(FULL)) == (8081, 9091)
    assert http_ports(render(SINGLE_PORT)) == (HttpSettings().port, None)


@pytest.mark.parametrize(
    "set_values",
    [
        ["config.http.adminPort=8080"],  # the bridge's default callback port
        ["config.http.port=9090"],  # the chart's default admin port
        ["config.http.port=8081", "config.http.adminPort=8081"],
    ],
    ids=["admin-on-default-port", "port-on-default-admin", "both-set"],
)
def test_admin_port_equal_to_http_port_is_refused(helm: Helm, set_values: list[str]) -> None:
    with pytest.raises(HelmError, match=r"config\.http\.adminPort \((\d+)\) must differ from"):
        helm.template(DEFAULT, set_values=set_values)


def test_admin_port_null_from_the_command_line(helm: Helm) -> None:
    manifests = helm.template(DEFAULT, set_values=["config.http.adminPort=null"])
    # Empty, not absent: it must override the image's BRIDGE_HTTP__ADMIN_PORT.
    assert configmap_data(manifests)["BRIDGE_HTTP__ADMIN_PORT"] == ""
    for deployment in of_kind(manifests, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert [p["name"] for p in container["ports"]] == ["http"], kn(deployment)
        assert container["readinessProbe"]["httpGet"]["port"] == "http", kn(deployment)


def _prestop_seconds(container: Manifest) -> int:
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep"
    return int(command[1])


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_grace_period_exceeds_prestop_plus_shutdown(render: Render, values: Path) -> None:
    manifests = render(values)
    data = configmap_data(manifests)
    shutdown = float(data.get("BRIDGE_HTTP__SHUTDOWN_TIMEOUT", HttpSettings().shutdown_timeout))
    rebalance = float(
        data.get("BRIDGE_WORKER__REBALANCE_TIMEOUT", WorkerSettings().rebalance_timeout)
    )
    # A worker's create-call request out at SIGTERM gets what a rebalance gives it.
    drain = {"receiver": shutdown, "worker": max(shutdown, rebalance * REVOKE_SHARE)}
    deployments = of_kind(manifests, "Deployment")
    assert deployments
    for deployment in deployments:
        spec = deployment["spec"]["template"]["spec"]
        sleep = _prestop_seconds(spec["containers"][0])
        assert sleep > 0, kn(deployment)
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        assert spec["terminationGracePeriodSeconds"] > sleep + drain[component], kn(deployment)


def test_default_shutdown_budget_matches_the_bridge() -> None:
    """The chart's 25 s fallback in _helpers.tpl is the bridge's default."""
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    default = HttpSettings().shutdown_timeout
    assert f"shutdownTimeout | default {default:g} " in helpers
    assert f"| default {HttpSettings().port} " in helpers


def test_too_short_grace_period_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError, match=r"worker.terminationGracePeriodSeconds \(35\) must exceed"):
        helm.template(DEFAULT, set_values=["worker.terminationGracePeriodSeconds=35"])
    # Enough for the shutdown timeout, not for the 48 s a rebalance gives a request.
    with pytest.raises(HelmError, match=r"worker.terminationGracePeriodSeconds \(50\).*\(58\)"):
        helm.template(DEFAULT, set_values=["worker.terminationGracePeriodSeconds=50"])
    with pytest.raises(HelmError, match=r"worker.terminationGracePeriodSeconds \(70\).*\(90\)"):
        helm.template(DEFAULT, set_values=["config.worker.rebalanceTimeout=100"])
    with pytest.raises(HelmError, match=r"receiver.terminationGracePeriodSeconds \(45\)"):
        helm.template(DEFAULT, set_values=["config.http.shutdownTimeout=40"])


def test_prestop_modes(render: Render) -> None:
    default = one(render(DEFAULT), "Deployment", "-receiver")["spec"]["template"]["spec"]
    assert default["containers"][0]["lifecycle"]["preStop"] == {
        "exec": {"command": ["sleep", "10"]}
    }
    full = one(render(FULL), "Deployment", "-receiver")["spec"]["template"]["spec"]
    assert full["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    # The admin port changes the probes, not the shutdown: same hook without it.
    single = one(render(SINGLE_PORT), "Deployment", "-receiver")["spec"]["template"]["spec"]
    assert single["containers"][0]["lifecycle"] == default["containers"][0]["lifecycle"]


def test_checksum_annotations(helm: Helm, render: Render) -> None:
    def annotations(manifests: list[Manifest], component: str) -> dict[str, str]:
        deployment = one(manifests, "Deployment", f"-{component}")
        return deployment["spec"]["template"]["metadata"]["annotations"]

    base = render(SENTINEL_VALUES)
    changed_config = helm.template(SENTINEL_VALUES, set_values=["config.log.level=DEBUG"])
    # A component's secret checksum covers only the secrets it reads: rotating the worker's
    # token restarts the workers alone, and the receiver's pods carry no digest of it.
    rotations = {
        "secrets.worker.fonestormToken=rotated": {"worker"},
        "secrets.worker.kafkaSaslPassword=rotated": {"worker"},
        "secrets.receiver.kafkaSaslPassword=rotated": {"receiver"},
        "secrets.callbacks.password=rotated": {"receiver", "worker"},
    }
    for component in ("receiver", "worker"):
        before = annotations(base, component)
        for key in ("checksum/config", "checksum/secret"):
            assert re.fullmatch(r"[0-9a-f]{64}", before[key]), (component, key)
        config = annotations(changed_config, component)
        assert config["checksum/config"] != before["checksum/config"]
        assert config["checksum/secret"] == before["checksum/secret"]
        for rotation, restarted in rotations.items():
            secret = annotations(helm.template(SENTINEL_VALUES, set_values=[rotation]), component)
            changed = secret["checksum/secret"] != before["checksum/secret"]
            assert changed is (component in restarted), (component, rotation)
            assert secret["checksum/config"] == before["checksum/config"]


def test_pod_annotations(render: Render) -> None:
    receiver = one(render(FULL), "Deployment", "-receiver")["spec"]["template"]["metadata"]
    annotations = receiver["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9091"  # the admin port, not 8081
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["example.com/owner"] == "telephony"
    assert receiver["labels"]["tier"] == "edge"
    default = one(render(DEFAULT), "Deployment", "-receiver")["spec"]["template"]["metadata"]
    assert "prometheus.io/scrape" not in default["annotations"]
    single = one(render(SINGLE_PORT), "Deployment", "-worker")["spec"]["template"]["metadata"]
    assert single["annotations"]["prometheus.io/port"] == str(HttpSettings().port)


def test_image_reference(render: Render) -> None:
    default = one(render(DEFAULT), "Deployment", "-worker")["spec"]["template"]["spec"]
    assert default["containers"][0]["image"] == f"fonestorm-bridge:{APP_VERSION}"
    full = one(render(FULL), "Deployment", "-worker")["spec"]["template"]["spec"]
    digest = values_of(FULL)["image"]["digest"]
    assert full["containers"][0]["image"] == (
        f"registry.example.com/telephony/fonestorm-bridge@{digest}"
    )
    assert full["imagePullSecrets"] == [{"name": "regcred"}]


# ---------------------------------------------------------------- scaling


def test_full_autoscaling_and_disruption_budgets(render: Render) -> None:
    manifests = render(FULL)
    hpas = {
        m["spec"]["scaleTargetRef"]["name"]: m
        for m in of_kind(manifests, "HorizontalPodAutoscaler")
    }
    assert set(hpas) == {"fsb-fonestorm-bridge-receiver", "fsb-fonestorm-bridge-worker"}
    worker = hpas["fsb-fonestorm-bridge-worker"]["spec"]
    assert worker["maxReplicas"] == values_of(FULL)["config"]["kafka"]["topicPartitions"]
    receiver = hpas["fsb-fonestorm-bridge-receiver"]["spec"]
    assert (receiver["minReplicas"], receiver["maxReplicas"]) == (3, 20)
    metrics = {m["resource"]["name"]: m["resource"]["target"] for m in receiver["metrics"]}
    assert metrics == {
        "cpu": {"type": "Utilization", "averageUtilization": 60},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    for deployment in of_kind(manifests, "Deployment"):
        assert "replicas" not in deployment["spec"], kn(deployment)
    pdbs = {m["metadata"]["name"]: m["spec"] for m in of_kind(manifests, "PodDisruptionBudget")}
    assert pdbs["fsb-fonestorm-bridge-receiver"]["maxUnavailable"] == "25%"
    assert pdbs["fsb-fonestorm-bridge-worker"]["maxUnavailable"] == 1


def test_worker_only(render: Render) -> None:
    manifests = render(WORKER_ONLY)
    components = {
        m["metadata"]["labels"].get("app.kubernetes.io/component")
        for m in manifests
        if m["kind"] not in {"ConfigMap", "Secret", "ServiceAccount"}
    }
    assert components == {"worker", "test"}
    assert not of_kind(manifests, "Ingress")
    (hpa,) = of_kind(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] == 6
    test_pod = one(manifests, "Pod")
    env = env_of(test_pod["spec"]["containers"][0])
    assert env["READYZ_URLS"]["value"] == "http://fsb-fonestorm-bridge-worker:9090/readyz"


def test_both_components_disabled_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError, match="enable at least one"):
        helm.template(set_values=["receiver.enabled=false", "worker.enabled=false"])
