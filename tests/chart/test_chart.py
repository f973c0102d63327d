"""The Helm chart, checked with the real Helm engine and the Kubernetes API schemas (offline).

Every test renders ``helm/fonestorm-bridge`` with ``helm template`` (or lints it) and inspects
the manifests: Kubernetes schema validity, the restricted Pod Security Standard, secrets kept
out of ConfigMaps and env literals, values schema strictness, labels, shutdown timing.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bridge.cli import build_parser
from bridge.obs.metrics import Metrics
from bridge.settings import HttpSettings, Settings
from tests.chart.helmlib import (
    CHART_DIR,
    CI_VALUES,
    HELM_VERSION,
    MAX_KUBE,
    MIN_KUBE,
    NAMESPACE,
    RELEASE,
    SLEEP_ACTION_KUBE,
    TEST_VALUES,
    Helm,
    HelmError,
    Manifest,
    Render,
    component_labels,
    containers,
    env_of,
    kn,
    of_kind,
    one,
    pod_specs,
)
from tests.chart.values_doc import (
    README,
    documented_values,
    lookup,
    render_readme,
    value_lines,
)
from tests.chart.values_doc import VALUES as VALUES_YAML

SENTINEL_VALUES = TEST_VALUES / "secret-sentinels-values.yaml"
ALL_VALUES = [*CI_VALUES, SENTINEL_VALUES]
CI_IDS = [path.name.removesuffix("-values.yaml") for path in CI_VALUES]
ALL_IDS = [path.name.removesuffix("-values.yaml") for path in ALL_VALUES]
FULL = CHART_DIR / "ci" / "full-values.yaml"
WORKER_ONLY = CHART_DIR / "ci" / "worker-only-values.yaml"
DEFAULT = CHART_DIR / "ci" / "default-values.yaml"

#: Kinds that are CustomResources: not in the Kubernetes API schemas.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
#: Settings that are secrets: never in a ConfigMap or an env ``value:``.
SECRET_ENV = {
    "BRIDGE_FONESTORM__TOKEN",
    "BRIDGE_CALLBACKS__USERNAME",
    "BRIDGE_CALLBACKS__PASSWORD",
    "BRIDGE_KAFKA__SASL_USERNAME",
    "BRIDGE_KAFKA__SASL_PASSWORD",
}
#: Settings the chart does not take from `config` (set otherwise, or meaningless in a pod).
NOT_IN_CONFIG = {
    *SECRET_ENV,
    "BRIDGE_HTTP__HOST",  # the image listens on 0.0.0.0
    "BRIDGE_KAFKA__SSL_CAFILE",  # file paths come from `kafkaTls`
    "BRIDGE_KAFKA__SSL_CERTFILE",
    "BRIDGE_KAFKA__SSL_KEYFILE",
}
#: Volume types the restricted Pod Security Standard allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def values_of(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def chart_default(*keys: str) -> Any:
    value: Any = values_of(CHART_DIR / "values.yaml")
    for key in keys:
        value = value[key]
    return value


def settings_env_names() -> set[str]:
    """Every BRIDGE_* variable the bridge's Settings read (sandbox excluded: not deployed)."""
    names = set()
    for section, field in Settings.model_fields.items():
        if section == "sandbox":
            continue
        model = field.annotation
        assert isinstance(model, type)
        for name in model.model_fields:  # type: ignore[attr-defined]
            names.add(f"BRIDGE_{section.upper()}__{name.upper()}")
    return names


def configmap_data(manifests: list[Manifest]) -> dict[str, str]:
    return one(manifests, "ConfigMap")["data"] or {}


# ---------------------------------------------------------------- helm itself


def test_helm_is_the_pinned_release(helm: Helm) -> None:
    assert helm.version() == HELM_VERSION


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_lint_strict(helm: Helm, values: Path) -> None:
    out = helm.lint(values)
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out
    assert "[WARNING]" not in out, out


def test_lint_strict_without_values_file(helm: Helm) -> None:
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
    manifests = render()
    names = sorted(kn(m) for m in manifests)
    assert names == sorted(
        [
            "ConfigMap/fsb-fonestorm-bridge",
            "Deployment/fsb-fonestorm-bridge-receiver",
            "Deployment/fsb-fonestorm-bridge-worker",
            "PodDisruptionBudget/fsb-fonestorm-bridge-receiver",
            "PodDisruptionBudget/fsb-fonestorm-bridge-worker",
            "Pod/fsb-fonestorm-bridge-test-readyz",
            "Secret/fsb-fonestorm-bridge",
            "Service/fsb-fonestorm-bridge-receiver",
            "Service/fsb-fonestorm-bridge-worker",
            "ServiceAccount/fsb-fonestorm-bridge",
        ]
    )
    receiver = one(manifests, "Deployment", "-receiver")
    assert receiver["spec"]["replicas"] == 2
    assert receiver["spec"]["template"]["spec"]["containers"][0]["args"] == ["receiver"]
    worker = one(manifests, "Deployment", "-worker")
    assert worker["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]
    assert one(manifests, "Secret")["data"] == {}


def test_ci_values_cover_the_required_scenarios() -> None:
    assert {"default", "full", "worker-only"} <= set(CI_IDS)
    assert values_of(DEFAULT) == {}


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
        helm.template(kube_version="1.24.0")


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


# ---------------------------------------------------------------- pod security


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_every_pod_meets_restricted_pod_security(render: Render, values: Path) -> None:
    specs = list(pod_specs(render(values)))
    assert any(name.startswith("Pod/") for name, _ in specs), "the helm test pod is checked too"
    for name, spec in specs:
        assert spec["automountServiceAccountToken"] is False, name
        for forbidden in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
            assert not spec.get(forbidden), (name, forbidden)
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] == 10001, name
        assert pod_sc["runAsGroup"] == 10001, name
        assert pod_sc["fsGroup"] == 10001, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUME_TYPES, (name, volume)
        for container in containers(spec):
            where = f"{name} container {container['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["runAsNonRoot"] is True, where
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert set(sc["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}, where
            assert sc.get("runAsUser", 10001) != 0, where
            for port in container.get("ports", []):
                assert "hostPort" not in port, where


def test_tmp_is_an_empty_dir(render: Render) -> None:
    for name, spec in pod_specs(render()):
        if name.startswith("Pod/"):
            continue
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["tmp"]["emptyDir"]["sizeLimit"] == "64Mi", name
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        assert mounts["/tmp"] == "tmp", name  # noqa: S108


def test_service_account(render: Render) -> None:
    manifests = render(FULL)
    account = one(manifests, "ServiceAccount")
    assert account["metadata"]["name"] == "fonestorm-bridge-ci"
    assert account["automountServiceAccountToken"] is False
    for name, spec in pod_specs(manifests):
        assert spec["serviceAccountName"] == "fonestorm-bridge-ci", name


def test_service_account_not_created(helm: Helm) -> None:
    manifests = helm.template(set_values=["serviceAccount.create=false"])
    assert not of_kind(manifests, "ServiceAccount")
    for name, spec in pod_specs(manifests):
        assert spec["serviceAccountName"] == "default", name


# ---------------------------------------------------------------- secrets


SENTINELS = {
    "BRIDGE_FONESTORM__TOKEN": ("fonestorm-token", "SENTINEL-fonestorm-token-8d41e2"),
    "BRIDGE_CALLBACKS__USERNAME": ("callbacks-username", "SENTINEL-callbacks-user-5b7c09"),
    "BRIDGE_CALLBACKS__PASSWORD": ("callbacks-password", "SENTINEL-callbacks-password-c3a6f1"),
    "BRIDGE_KAFKA__SASL_USERNAME": ("kafka-sasl-username", "SENTINEL-kafka-sasl-user-1f9e44"),
    "BRIDGE_KAFKA__SASL_PASSWORD": ("kafka-sasl-password", "SENTINEL-kafka-sasl-password-7a20bd"),
}


def test_sentinel_file_matches_the_test() -> None:
    secrets = values_of(SENTINEL_VALUES)["secrets"]
    assert sorted(secrets.values()) == sorted(value for _, value in SENTINELS.values())


def test_secret_values_appear_nowhere_in_plain_text(helm: Helm) -> None:
    text = helm.template_text(SENTINEL_VALUES)
    for _, sentinel in SENTINELS.values():
        assert sentinel not in text
        assert "SENTINEL" not in text


def test_secret_values_only_in_the_secret(render: Render) -> None:
    manifests = render(SENTINEL_VALUES)
    encoded = {base64.b64encode(value.encode()).decode() for _, value in SENTINELS.values()}
    secret = one(manifests, "Secret")
    assert secret["metadata"]["name"] == "fsb-fonestorm-bridge"
    assert set(secret["data"].values()) == encoded
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == dict(
        SENTINELS.values()
    )
    for manifest in manifests:
        if manifest is secret:
            continue
        dumped = json.dumps(manifest)
        for value in encoded:
            assert value not in dumped, kn(manifest)


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_secrets_never_in_configmap_or_env_literals(render: Render, values: Path) -> None:
    manifests = render(values)
    data = configmap_data(manifests)
    assert not SECRET_ENV & set(data)
    assert not any(
        re.search(r"PASSWORD|TOKEN|SASL_USERNAME|CALLBACKS__USERNAME", key) for key in data
    )
    for name, spec in pod_specs(manifests):
        for container in containers(spec):
            for item in container.get("env", []):
                if item["name"] in SECRET_ENV:
                    assert "value" not in item, (name, item)
                    assert set(item["valueFrom"]) == {"secretKeyRef"}, (name, item)
                if "value" in item:
                    assert not item["name"].startswith("BRIDGE_"), (name, item)


def test_secret_env_refs_point_at_the_chart_secret(render: Render) -> None:
    manifests = render(SENTINEL_VALUES)
    for component in ("receiver", "worker"):
        container = one(manifests, "Deployment", f"-{component}")["spec"]["template"]["spec"][
            "containers"
        ][0]
        env = env_of(container)
        for variable, (key, _) in SENTINELS.items():
            ref = env[variable]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "fsb-fonestorm-bridge", "key": key}, (component, variable)


def test_no_secret_env_when_no_secret_values(render: Render) -> None:
    for name, spec in pod_specs(render()):
        if name.startswith("Deployment/"):
            assert not SECRET_ENV & set(env_of(spec["containers"][0])), name


def test_sasl_credentials_only_with_sasl_protocol(helm: Helm) -> None:
    manifests = helm.template(SENTINEL_VALUES, set_values=["config.kafka.securityProtocol=SSL"])
    env = env_of(
        one(manifests, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]
    )
    assert "BRIDGE_KAFKA__SASL_USERNAME" not in env
    assert "BRIDGE_KAFKA__SASL_PASSWORD" not in env
    assert "BRIDGE_FONESTORM__TOKEN" in env


def test_existing_secret(render: Render) -> None:
    manifests = render(FULL)
    assert not of_kind(manifests, "Secret")
    keys = values_of(FULL)["secrets"]["keys"]
    expected = {
        "BRIDGE_FONESTORM__TOKEN": keys["fonestormToken"],
        "BRIDGE_CALLBACKS__USERNAME": keys["callbacksUsername"],
        "BRIDGE_CALLBACKS__PASSWORD": keys["callbacksPassword"],
        "BRIDGE_KAFKA__SASL_USERNAME": keys["kafkaSaslUsername"],
        "BRIDGE_KAFKA__SASL_PASSWORD": keys["kafkaSaslPassword"],
    }
    for component in ("receiver", "worker"):
        deployment = one(manifests, "Deployment", f"-{component}")
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        for variable, key in expected.items():
            assert env[variable]["valueFrom"]["secretKeyRef"] == {
                "name": "fonestorm-bridge-credentials",
                "key": key,
            }


def test_existing_secret_with_literal_values_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError, match="leave the literal secret values"):
        helm.template(set_values=["secrets.existingSecret=creds", "secrets.fonestormToken=oops"])


def test_kafka_tls_files_mounted_from_secret(render: Render) -> None:
    manifests = render(FULL)
    data = configmap_data(manifests)
    assert data["BRIDGE_KAFKA__SSL_CAFILE"] == "/etc/kafka-tls/ca.crt"
    assert data["BRIDGE_KAFKA__SSL_CERTFILE"] == "/etc/kafka-tls/tls.crt"
    assert data["BRIDGE_KAFKA__SSL_KEYFILE"] == "/etc/kafka-tls/tls.key"
    for component in ("receiver", "worker"):
        spec = one(manifests, "Deployment", f"-{component}")["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        secret = volumes["kafka-tls"]["secret"]
        assert secret["secretName"] == "kafka-client-tls"
        assert secret["defaultMode"] == 0o440
        assert [item["key"] for item in secret["items"]] == ["ca.crt", "tls.crt", "tls.key"]
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        assert mounts["kafka-tls"] == {
            "name": "kafka-tls",
            "mountPath": "/etc/kafka-tls",
            "readOnly": True,
        }


def test_kafka_mtls_needs_both_files(helm: Helm) -> None:
    with pytest.raises(HelmError, match="go together"):
        helm.template(set_values=["kafkaTls.existingSecret=tls", "kafkaTls.certKey=tls.crt"])


# ---------------------------------------------------------------- config → bridge settings


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_configmap_keys_are_real_settings(render: Render, values: Path) -> None:
    known = settings_env_names()
    data = configmap_data(render(values))
    assert data
    assert set(data) <= known, set(data) - known
    for name, spec in pod_specs(render(values)):
        for container in containers(spec):
            bridge_env = {n for n in env_of(container) if n.startswith("BRIDGE_")}
            assert bridge_env <= known, (name, bridge_env - known)


def test_every_bridge_setting_is_configurable() -> None:
    """A setting added to bridge/settings.py needs a `config` value (or a reason not to)."""
    config = chart_default("config")
    exposed = {
        f"BRIDGE_{section.upper()}__{_snake(field).upper()}"
        for section, fields in config.items()
        for field in fields
    }
    missing = settings_env_names() - NOT_IN_CONFIG - exposed
    assert not missing, f"add these settings to the chart's values `config`: {sorted(missing)}"
    assert not exposed - settings_env_names(), "chart `config` keys the bridge does not know"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_rendered_config_loads_in_the_bridge(
    render: Render, values: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap's strings parse as the bridge's Settings (numbers, lists, enums)."""
    for name in list(os.environ):
        if name.startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    for name, value in configmap_data(render(values)).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    config = values_of(values).get("config", {})
    if values == FULL:
        assert settings.kafka.request_timeout_ms == 3_000_000
        assert settings.kafka.produce_timeout == 7.5
        assert settings.callbacks.correlation_cache_size == 1_000_000
        assert settings.fonestorm.fonenumbers == ["+15550100", "+15550101"]
        assert settings.fonestorm.register_on_start is True
        assert settings.worker.rate_limit == 5.5
        assert settings.http.port == 8081
        assert settings.kafka.ssl_cafile == "/etc/kafka-tls/ca.crt"
    expected_servers = config.get("kafka", {}).get("bootstrapServers", "kafka:9092")
    assert settings.kafka.bootstrap_servers == expected_servers


def _as_stated(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def test_config_comments_state_the_bridge_defaults() -> None:
    """`null: X` in a config value's comment is the bridge's real default."""
    text = VALUES_YAML.read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    checked = 0
    for path, description in documented_values(text):
        if not path.startswith("config.") or lookup(values, path) is not None:
            continue
        _, section, field = path.split(".")
        model = Settings.model_fields[section].annotation
        assert isinstance(model, type)
        default = model.model_fields[_snake(field)].get_default(  # type: ignore[attr-defined]
            call_default_factory=True
        )
        stated = re.search(r"null: (\S+?)[.;]?(\s|$)", description)
        assert stated, f"{path}: say `null: <bridge default>` in its comment"
        assert stated.group(1).strip("`") == _as_stated(default), (path, default)
        checked += 1
    assert checked > 30


def test_component_args_are_cli_commands() -> None:
    parser = build_parser()
    for component in ("receiver", "worker"):
        args = chart_default(component, "args")
        assert parser.parse_args(args).command == component
    # NOTES.txt tells operators to run it.
    assert parser.parse_args(["register-callbacks"]).command == "register-callbacks"


def test_config_null_keeps_bridge_default(render: Render) -> None:
    data = configmap_data(render())
    assert data == {
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": "kafka:9092",
        "BRIDGE_KAFKA__SECURITY_PROTOCOL": "PLAINTEXT",
    }


# ---------------------------------------------------------------- values schema


BAD_VALUES = {
    "wrong type (string replicas)": ["--set-string", "receiver.replicas=two"],
    "wrong type (number for a string)": ["--set", "config.kafka.bootstrapServers=9092"],
    "wrong type (bool for a map)": ["--set", "receiver.nodeSelector=true"],
    "unknown top-level key": ["--set", "replicaCount=3"],
    "unknown nested key": ["--set", "config.kafka.bootstrapServer=kafka:9092"],
    "unknown setting section": ["--set", "config.sandbox.port=1"],
    "unknown key deep in a list": ["--set", "networkPolicy.dns.to[0].podSelectr.app=x"],
    "unknown key in probe": ["--set", "worker.livenessProbe.path=/x"],
    "enum": ["--set", "config.kafka.securityProtocol=TLS"],
    "secret put under config": ["--set", "config.fonestorm.token=abc"],
    "root allowed": ["--set", "podSecurityContext.runAsNonRoot=false"],
    "privilege escalation": ["--set", "securityContext.allowPrivilegeEscalation=true"],
    "capabilities not dropped": ["--set", "securityContext.capabilities.drop={NET_RAW}"],
    "seccomp unconfined": ["--set", "podSecurityContext.seccompProfile.type=Unconfined"],
    "negative replicas": ["--set", "worker.replicas=-1"],
    "bad quantity": ["--set", "receiver.resources.limits.memory=lots"],
    "bad preStop mode": ["--set", "lifecycle.preStopMode=httpGet"],
    "privileged http port": ["--set", "config.http.port=80"],
    "bad digest": ["--set", "image.digest=latest"],
    "overriding a chart label": ["--set", "receiver.podLabels.app\\.kubernetes\\.io/name=x"],
}


@pytest.mark.parametrize("args", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_rejects_bad_values(helm: Helm, args: list[str]) -> None:
    with pytest.raises(HelmError) as failure:
        helm.run("template", RELEASE, str(CHART_DIR), *args)
    assert "values don't meet the specifications of the schema" in failure.value.stderr, (
        failure.value.stderr
    )


def test_schema_rejects_unknown_key_in_values_file(helm: Helm, tmp_path: Path) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text("receiver:\n  ingress:\n    enabled: true\n    tlsSecret: x\n")
    with pytest.raises(HelmError, match="additional properties 'tlsSecret' not allowed"):
        helm.template(bad)


def _schema() -> dict[str, Any]:
    return json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))


def test_schema_is_draft_07_and_valid() -> None:
    schema = _schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_values_files_valid_for_schema(values: Path) -> None:
    merged = _merge(values_of(CHART_DIR / "values.yaml"), values_of(values))
    jsonschema.Draft7Validator(_schema()).validate(merged)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


#: Objects whose keys are free by nature (labels, annotations, node selectors) take
#: `additionalProperties: {type: string}`; `global` is Helm's, shared with parent charts.
OPEN_MAPS = {"#/definitions/stringMap", "#/definitions/extraLabels", "#/properties/global"}


def _objects(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object" or (
            isinstance(node.get("type"), list) and "object" in node["type"]
        ):
            yield where, node
        for key, child in node.items():
            yield from _objects(child, f"{where}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _objects(child, f"{where}/{index}")


def test_schema_closes_every_object() -> None:
    objects = list(_objects(_schema(), "#"))
    assert len(objects) > 50
    for where, node in objects:
        if where in OPEN_MAPS:
            assert where == "#/properties/global" or node["additionalProperties"] == {
                "type": "string"
            }
            continue
        assert node.get("additionalProperties") is False, where
        assert node.get("properties"), where


def test_every_value_is_in_the_schema() -> None:
    schema = _schema()

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        return node

    def walk(values: dict[str, Any], node: dict[str, Any], where: str) -> None:
        node = resolve(node)
        for key, value in values.items():
            props = node.get("properties", {})
            if node.get("additionalProperties") == {"type": "string"}:
                continue
            assert key in props, f"{where}.{key} missing in values.schema.json"
            if isinstance(value, dict) and value:
                walk(value, props[key], f"{where}.{key}")

    walk(values_of(CHART_DIR / "values.yaml"), schema, "values")


# ---------------------------------------------------------------- values.yaml documentation


def test_every_value_has_a_comment() -> None:
    """Every key has a comment above it; a `# --` comment documents the key's whole default
    (e.g. `resources`), so keys inside it need none."""
    documented: list[str] = []
    undocumented = []
    for number, path, comments in value_lines(VALUES_YAML.read_text(encoding="utf-8")):
        if any(path.startswith(f"{parent}.") for parent in documented):
            continue
        if not comments:
            undocumented.append(f"line {number}: {path}")
        elif comments[-1].startswith("# --"):
            documented.append(path)
    assert not undocumented, undocumented
    assert len(documented) > 150


def test_readme_values_table_is_current() -> None:
    readme = README.read_text(encoding="utf-8")
    assert "<!-- values:start -->" in readme
    assert render_readme(readme) == readme, "run: .venv/bin/python -m tests.chart.values_doc"
    documented = dict(documented_values(VALUES_YAML.read_text(encoding="utf-8")))
    for path in documented:
        assert f"| `{path}` |" in readme, path
    assert "| `secrets.fonestormToken` |" in readme
    assert "| `receiver.autoscaling.maxReplicas` |" in readme


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
        assert labels["helm.sh/chart"] == "fonestorm-bridge-0.1.0", where
        assert labels["app.kubernetes.io/name"] == "fonestorm-bridge", where
        assert labels["app.kubernetes.io/instance"] == RELEASE, where
        assert labels["app.kubernetes.io/version"] == "0.1.0", where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        if manifest["kind"] not in {
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "ServiceMonitor",
            "PrometheusRule",
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
    manifests = helm.template(set_values=["fullnameOverride=bridge", "commonLabels.team=voice"])
    for manifest in manifests:
        assert manifest["metadata"]["name"].startswith("bridge"), kn(manifest)
        assert manifest["metadata"]["labels"]["team"] == "voice", kn(manifest)


# ---------------------------------------------------------------- probes, shutdown, rollout


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_probes(render: Render, values: Path) -> None:
    manifests = render(values)
    port = int(configmap_data(manifests).get("BRIDGE_HTTP__PORT", HttpSettings().port))
    for deployment in of_kind(manifests, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["envFrom"] == [{"configMapRef": {"name": "fsb-fonestorm-bridge"}}]


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
    deployments = of_kind(manifests, "Deployment")
    assert deployments
    for deployment in deployments:
        spec = deployment["spec"]["template"]["spec"]
        sleep = _prestop_seconds(spec["containers"][0])
        assert sleep > 0, kn(deployment)
        assert spec["terminationGracePeriodSeconds"] > sleep + shutdown, kn(deployment)


def test_default_shutdown_budget_matches_the_bridge() -> None:
    """The chart's 25 s fallback in _helpers.tpl is the bridge's default."""
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    default = HttpSettings().shutdown_timeout
    assert f"shutdownTimeout | default {default:g} " in helpers
    assert f"| default {HttpSettings().port} " in helpers


def test_too_short_grace_period_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError, match=r"worker.terminationGracePeriodSeconds \(35\) must exceed"):
        helm.template(set_values=["worker.terminationGracePeriodSeconds=35"])
    with pytest.raises(HelmError, match=r"receiver.terminationGracePeriodSeconds \(45\)"):
        helm.template(set_values=["config.http.shutdownTimeout=40"])


def test_prestop_modes(render: Render) -> None:
    default = one(render(), "Deployment", "-receiver")["spec"]["template"]["spec"]
    assert default["containers"][0]["lifecycle"]["preStop"] == {
        "exec": {"command": ["sleep", "10"]}
    }
    full = one(render(FULL), "Deployment", "-receiver")["spec"]["template"]["spec"]
    assert full["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}


def test_checksum_annotations(helm: Helm, render: Render) -> None:
    def annotations(manifests: list[Manifest], component: str) -> dict[str, str]:
        deployment = one(manifests, "Deployment", f"-{component}")
        return deployment["spec"]["template"]["metadata"]["annotations"]

    base = render(SENTINEL_VALUES)
    changed_config = helm.template(SENTINEL_VALUES, set_values=["config.log.level=DEBUG"])
    changed_secret = helm.template(SENTINEL_VALUES, set_values=["secrets.fonestormToken=rotated"])
    for component in ("receiver", "worker"):
        before = annotations(base, component)
        for key in ("checksum/config", "checksum/secret"):
            assert re.fullmatch(r"[0-9a-f]{64}", before[key]), (component, key)
        config = annotations(changed_config, component)
        assert config["checksum/config"] != before["checksum/config"]
        assert config["checksum/secret"] == before["checksum/secret"]
        secret = annotations(changed_secret, component)
        assert secret["checksum/secret"] != before["checksum/secret"]
        assert secret["checksum/config"] == before["checksum/config"]


def test_pod_annotations(render: Render) -> None:
    receiver = one(render(FULL), "Deployment", "-receiver")["spec"]["template"]["metadata"]
    annotations = receiver["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8081"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["example.com/owner"] == "telephony"
    assert receiver["labels"]["tier"] == "edge"
    default = one(render(), "Deployment", "-receiver")["spec"]["template"]["metadata"]
    assert "prometheus.io/scrape" not in default["annotations"]


def test_image_reference(render: Render) -> None:
    default = one(render(), "Deployment", "-worker")["spec"]["template"]["spec"]
    assert default["containers"][0]["image"] == "fonestorm-bridge:0.1.0"
    full = one(render(FULL), "Deployment", "-worker")["spec"]["template"]["spec"]
    digest = values_of(FULL)["image"]["digest"]
    assert full["containers"][0]["image"] == (
        f"registry.example.com/telephony/fonestorm-bridge@{digest}"
    )
    assert full["imagePullSecrets"] == [{"name": "regcred"}]


# ---------------------------------------------------------------- scaling, exposure, network


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
    assert env["READYZ_URLS"]["value"] == "http://fsb-fonestorm-bridge-worker:8080/readyz"


def test_both_components_disabled_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError, match="enable at least one"):
        helm.template(set_values=["receiver.enabled=false", "worker.enabled=false"])


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
    default_service = one(render(), "Service", "-receiver")
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
    manifests = helm.template(set_values=["networkPolicy.enabled=true"])
    receiver = one(manifests, "NetworkPolicy", "-receiver")["spec"]
    assert "from" not in receiver["ingress"][0]  # FoneStorm calls in from anywhere
    worker = one(manifests, "NetworkPolicy", "-worker")["spec"]
    assert worker["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": component_labels("test")}}
    ]
    kafka_rule = next(r for r in receiver["egress"] if r["ports"][0]["port"] == 9092)
    assert "to" not in kafka_rule


# ---------------------------------------------------------------- helm test hook


def test_readyz_hook_pod(render: Render) -> None:
    manifests = render()
    pod = one(manifests, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "hook-succeeded" in pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    assert pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    receiver = one(manifests, "Deployment", "-receiver")["spec"]["template"]["spec"]
    assert container["image"] == receiver["containers"][0]["image"]
    assert container["command"][:2] == ["python", "-c"]
    assert "urllib.request" in container["command"][2]
    env = env_of(container)
    assert env["READYZ_URLS"]["value"].split() == [
        "http://fsb-fonestorm-bridge-receiver:80/readyz",
        "http://fsb-fonestorm-bridge-worker:8080/readyz",
    ]


class _Readyz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b'{"status": "ready"}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def readyz_server() -> Iterator[tuple[str, type[_Readyz]]]:
    handler = type("Handler", (_Readyz,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}/readyz", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _run_hook_script(render: Render, urls: str, timeout: str) -> subprocess.CompletedProcess[str]:
    (container,) = one(render(), "Pod")["spec"]["containers"]
    return subprocess.run(
        [sys.executable, "-c", container["command"][2]],
        env={"READYZ_URLS": urls, "READYZ_TIMEOUT": timeout, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_readyz_hook_script_passes_on_200(
    render: Render, readyz_server: tuple[str, type[_Readyz]]
) -> None:
    url, _ = readyz_server
    done = _run_hook_script(render, f"{url} {url}", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" 200 ") == 2


def test_readyz_hook_script_fails_on_503(
    render: Render, readyz_server: tuple[str, type[_Readyz]]
) -> None:
    url, handler = readyz_server
    handler.status = 503
    done = _run_hook_script(render, url, "1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not ready" in done.stdout


def test_readyz_hook_script_fails_when_nothing_listens(render: Render) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = _run_hook_script(render, f"http://127.0.0.1:{port}/readyz", "1")
    assert done.returncode == 1


# ---------------------------------------------------------------- NOTES.txt


def _notes(helm: Helm, tmp_path: Path, *values: Path) -> str:
    """NOTES.txt rendered offline: `helm install --dry-run` would want a cluster, so a copy of
    the chart renders it through `tpl` into a ConfigMap."""
    chart = tmp_path / "fonestorm-bridge"
    shutil.copytree(CHART_DIR, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-under-test.txt")
    (chart / "templates" / "notes-under-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: {{ tpl (.Files.Get "notes-under-test.txt") . | quote }}\n'
    )
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    args += ["--show-only", "templates/notes-under-test.yaml"]
    for path in values:
        args += ["--values", str(path)]
    return yaml.safe_load(helm.run(*args))["data"]["notes"]


def test_notes_explain_callback_registration(helm: Helm, tmp_path: Path) -> None:
    notes = _notes(helm, tmp_path / "full", FULL)
    assert "https://fonestorm-bridge.example.com/callbacks/calls" in notes
    assert "send_notify / receive_notify" in notes
    assert "fonestorm-bridge register-callbacks" in notes
    assert "deploy/fsb-fonestorm-bridge-receiver" in notes
    assert "Secret/fonestorm-bridge-credentials" in notes
    assert "maxReplicas: 12" in notes
    default = _notes(helm, tmp_path / "default")
    assert "port-forward svc/fsb-fonestorm-bridge-receiver 8080:80" in default
    assert "without basic auth" in default
    worker_only = _notes(helm, tmp_path / "worker", WORKER_ONLY)
    assert "register-callbacks" not in worker_only
    assert "worker:   Deployment/fsb-fonestorm-bridge-worker" in worker_only
