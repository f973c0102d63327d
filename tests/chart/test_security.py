"""Every pod meets the restricted Pod Security Standard; secrets stay out of ConfigMaps and
env literals, only in the chart's Secret (or an existing one) and mounted TLS files.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from tests.chart.chartlib import (
    ALL_IDS,
    ALL_VALUES,
    DEFAULT,
    FULL,
    SECRET_ENV,
    SENTINEL_VALUES,
    UNAUTHENTICATED,
    configmap_data,
    values_of,
)
from tests.chart.helmlib import (
    Helm,
    HelmError,
    Render,
    containers,
    env_of,
    kn,
    of_kind,
    one,
    pod_specs,
)

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
    for name, spec in pod_specs(render(DEFAULT)):
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
    manifests = helm.template(DEFAULT, set_values=["serviceAccount.create=false"])
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
    for name, spec in pod_specs(render(UNAUTHENTICATED)):
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
        helm.template(
            DEFAULT, set_values=["kafkaTls.existingSecret=tls", "kafkaTls.certKey=tls.crt"]
        )
