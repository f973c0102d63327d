"""Every pod meets the restricted Pod Security Standard; secrets stay out of ConfigMaps and
env literals, only in the chart's Secrets (or existing ones) and mounted TLS files; each
component reads only its own secrets, so the receiver never gets the FoneStorm token.
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
    Manifest,
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


#: group → {env var: (key in the chart's Secret, sentinel value)}.
SENTINELS = {
    "callbacks": {
        "BRIDGE_CALLBACKS__USERNAME": ("callbacks-username", "SENTINEL-callbacks-user-5b7c09"),
        "BRIDGE_CALLBACKS__PASSWORD": (
            "callbacks-password",
            "SENTINEL-callbacks-password-c3a6f1",
        ),
    },
    "receiver": {
        "BRIDGE_KAFKA__SASL_USERNAME": (
            "kafka-sasl-username",
            "SENTINEL-receiver-sasl-user-1f9e44",
        ),
        "BRIDGE_KAFKA__SASL_PASSWORD": (
            "kafka-sasl-password",
            "SENTINEL-receiver-sasl-password-7a20bd",
        ),
        "BRIDGE_DEAD_LETTERS__CALLBACK_SIGNING_KEY": (
            "dead-letter-signing-key",
            "SENTINEL-callback-signing-key-2e5d90-0123456789",
        ),
        "BRIDGE_SCHEMAS__REGISTRY_USERNAME": (
            "schema-registry-username",
            "SENTINEL-receiver-registry-user-4d1a77",
        ),
        "BRIDGE_SCHEMAS__REGISTRY_PASSWORD": (
            "schema-registry-password",
            "SENTINEL-receiver-registry-password-b83e2c",
        ),
    },
    "worker": {
        "BRIDGE_FONESTORM__TOKEN": ("fonestorm-token", "SENTINEL-fonestorm-token-8d41e2"),
        "BRIDGE_KAFKA__SASL_USERNAME": ("kafka-sasl-username", "SENTINEL-worker-sasl-user-e06b3d"),
        "BRIDGE_KAFKA__SASL_PASSWORD": (
            "kafka-sasl-password",
            "SENTINEL-worker-sasl-password-94c2a8",
        ),
        "BRIDGE_DEAD_LETTERS__COMMAND_SIGNING_KEY": (
            "dead-letter-signing-key",
            "SENTINEL-command-signing-key-94c1a8-0123456789",
        ),
        "BRIDGE_SCHEMAS__REGISTRY_USERNAME": (
            "schema-registry-username",
            "SENTINEL-worker-registry-user-6f0b19",
        ),
        "BRIDGE_SCHEMAS__REGISTRY_PASSWORD": (
            "schema-registry-password",
            "SENTINEL-worker-registry-password-e2c5d4",
        ),
    },
}
#: The secret groups each component reads.
READS = {"receiver": ("callbacks", "receiver"), "worker": ("worker", "callbacks")}
TOKEN_SENTINEL = SENTINELS["worker"]["BRIDGE_FONESTORM__TOKEN"][1]


def _sentinel_values() -> list[str]:
    return [value for group in SENTINELS.values() for _, value in group.values()]


def _decoded(manifests: list[Manifest]) -> dict[str, dict[str, str]]:
    """Secret name → its data, decoded."""
    return {
        secret["metadata"]["name"]: {
            key: base64.b64decode(value).decode() for key, value in secret["data"].items()
        }
        for secret in of_kind(manifests, "Secret")
    }


def _secret_refs(pod_spec: Manifest) -> set[str]:
    """Every Secret a pod spec refers to: env, envFrom, volumes (projected ones too)."""
    names: set[str] = set()
    for container in containers(pod_spec):
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                names.add(source["secretRef"]["name"])
    for volume in pod_spec.get("volumes", []):
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                names.add(source["secret"]["name"])
    return names


def _pod_spec(manifests: list[Manifest], component: str) -> Manifest:
    deployment = one(manifests, "Deployment", f"-{component}")
    spec: Manifest = deployment["spec"]["template"]["spec"]
    return spec


def test_sentinel_file_matches_the_test() -> None:
    secrets = values_of(SENTINEL_VALUES)["secrets"]
    literal = [value for group in secrets.values() for value in group.values()]
    assert sorted(literal) == sorted(_sentinel_values())


def test_secret_values_appear_nowhere_in_plain_text(helm: Helm) -> None:
    text = helm.template_text(SENTINEL_VALUES)
    for sentinel in _sentinel_values():
        assert sentinel not in text
    assert "SENTINEL" not in text


def test_secret_values_only_in_the_secret_of_their_group(render: Render) -> None:
    manifests = render(SENTINEL_VALUES)
    expected = {
        f"fsb-fonestorm-bridge-{group}": dict(entries.values())
        for group, entries in SENTINELS.items()
    }
    assert _decoded(manifests) == expected
    encoded = {base64.b64encode(value.encode()).decode() for value in _sentinel_values()}
    for manifest in manifests:
        if manifest["kind"] == "Secret":
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
        re.search(r"PASSWORD|TOKEN|SASL_USERNAME|CALLBACKS__USERNAME|SIGNING_KEY", key)
        for key in data
    )
    for name, spec in pod_specs(manifests):
        for container in containers(spec):
            for item in container.get("env", []):
                if item["name"] in SECRET_ENV:
                    assert "value" not in item, (name, item)
                    assert set(item["valueFrom"]) == {"secretKeyRef"}, (name, item)
                if "value" in item:
                    assert not item["name"].startswith("BRIDGE_"), (name, item)


def test_secret_env_refs_point_at_their_group_secret(render: Render) -> None:
    manifests = render(SENTINEL_VALUES)
    for component, groups in READS.items():
        env = env_of(_pod_spec(manifests, component)["containers"][0])
        expected = {
            variable: {"name": f"fsb-fonestorm-bridge-{group}", "key": key}
            for group in groups
            for variable, (key, _) in SENTINELS[group].items()
        }
        refs = {name: item["valueFrom"]["secretKeyRef"] for name, item in env.items()}
        assert refs == expected, component


def test_the_receiver_never_gets_the_fonestorm_token(render: Render) -> None:
    """Whatever the receiver's pods are handed (env, envFrom, volumes), no Secret holding the
    FoneStorm token is among it: the internet-facing component cannot leak what it does not
    have. (Its checksum annotation covers none of the worker's secrets: test_lifecycle.)"""
    manifests = render(SENTINEL_VALUES)
    holding_token = {
        name for name, data in _decoded(manifests).items() if TOKEN_SENTINEL in data.values()
    }
    assert holding_token, "the token is in some Secret"
    receiver = _pod_spec(manifests, "receiver")
    assert not _secret_refs(receiver) & holding_token
    assert "BRIDGE_FONESTORM__TOKEN" not in env_of(receiver["containers"][0])
    worker = _pod_spec(manifests, "worker")
    assert _secret_refs(worker) & holding_token
    assert "BRIDGE_FONESTORM__TOKEN" in env_of(worker["containers"][0])


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_no_receiver_anywhere_reads_the_token(helm: Helm, values: Path) -> None:
    """In every layout, with a token configured, the receiver's pods refer to neither the
    chart's worker Secret nor the worker's existing one."""
    worker_secret = values_of(values).get("secrets", {}).get("worker", {}).get("existingSecret")
    token = [] if worker_secret else ["secrets.worker.fonestormToken=a-token"]
    manifests = helm.template(values, set_values=token)
    token_secrets = {"fsb-fonestorm-bridge-worker", worker_secret} - {None, ""}
    holding_token = {
        name for name, data in _decoded(manifests).items() if "a-token" in data.values()
    }
    assert holding_token <= token_secrets
    for deployment in of_kind(manifests, "Deployment"):
        if deployment["metadata"]["labels"]["app.kubernetes.io/component"] != "receiver":
            continue
        spec = deployment["spec"]["template"]["spec"]
        assert not _secret_refs(spec) & token_secrets
        for container in containers(spec):
            assert "BRIDGE_FONESTORM__TOKEN" not in env_of(container)
            assert "envFrom" not in container or all(
                "secretRef" not in source for source in container["envFrom"]
            )


#: component → (the dead-letter signing key it writes with, the one it must never hold).
SIGNING_KEYS = {
    "receiver": (
        "BRIDGE_DEAD_LETTERS__CALLBACK_SIGNING_KEY",
        "BRIDGE_DEAD_LETTERS__COMMAND_SIGNING_KEY",
    ),
    "worker": (
        "BRIDGE_DEAD_LETTERS__COMMAND_SIGNING_KEY",
        "BRIDGE_DEAD_LETTERS__CALLBACK_SIGNING_KEY",
    ),
}


def test_each_dead_letter_signing_key_reaches_its_writer_only(render: Render) -> None:
    """The receiver signs callback dead letters and the worker command ones; neither is handed
    the other's key (with the command key, the internet-facing receiver could forge a dead
    letter that a replay would put onto the command topic), not even via a Secret it reads."""
    manifests = render(SENTINEL_VALUES)
    secrets = _decoded(manifests)
    for component, (mine, other) in SIGNING_KEYS.items():
        spec = _pod_spec(manifests, component)
        env = env_of(spec["containers"][0])
        ref = env[mine]["valueFrom"]["secretKeyRef"]
        assert secrets[ref["name"]][ref["key"]] == SENTINELS[component][mine][1]
        assert other not in env, component
        other_value = SENTINELS["worker" if component == "receiver" else "receiver"][other][1]
        holding_other = {name for name, data in secrets.items() if other_value in data.values()}
        assert holding_other, other
        assert not _secret_refs(spec) & holding_other, component


def test_each_component_has_its_own_kafka_identity(render: Render) -> None:
    """The receiver and the worker log in to Kafka as different users, from different Secrets;
    the one Secret both read holds only the callback pair."""
    manifests = render(SENTINEL_VALUES)
    secrets = _decoded(manifests)
    users = {}
    for component in READS:
        env = env_of(_pod_spec(manifests, component)["containers"][0])
        ref = env["BRIDGE_KAFKA__SASL_USERNAME"]["valueFrom"]["secretKeyRef"]
        users[component] = (ref["name"], secrets[ref["name"]][ref["key"]])
    assert users == {
        "receiver": ("fsb-fonestorm-bridge-receiver", "SENTINEL-receiver-sasl-user-1f9e44"),
        "worker": ("fsb-fonestorm-bridge-worker", "SENTINEL-worker-sasl-user-e06b3d"),
    }
    shared = _secret_refs(_pod_spec(manifests, "receiver")) & _secret_refs(
        _pod_spec(manifests, "worker")
    )
    assert shared == {"fsb-fonestorm-bridge-callbacks"}
    assert sorted(secrets["fsb-fonestorm-bridge-callbacks"]) == [
        "callbacks-password",
        "callbacks-username",
    ]


def test_the_same_kafka_user_for_both_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError, match="the same Kafka user"):
        helm.template(
            DEFAULT,
            set_values=[
                "config.kafka.securityProtocol=SASL_SSL",
                "secrets.receiver.kafkaSaslUsername=bridge",
                "secrets.worker.kafkaSaslUsername=bridge",
            ],
        )


def test_one_signing_key_for_both_is_refused(helm: Helm) -> None:
    key = "k" * 40
    with pytest.raises(HelmError, match="the same key"):
        helm.template(
            DEFAULT,
            set_values=[
                f"secrets.receiver.deadLetterSigningKey={key}",
                f"secrets.worker.deadLetterSigningKey={key}",
            ],
        )


@pytest.mark.parametrize(
    ("first", "second"),
    [("callbacks", "worker"), ("receiver", "worker"), ("callbacks", "receiver")],
)
def test_one_existing_secret_for_two_groups_is_refused(helm: Helm, first: str, second: str) -> None:
    with pytest.raises(HelmError, match="give each group its own Secret"):
        helm.template(
            set_values=[
                "secrets.callbacks.existingSecret=callbacks",
                f"secrets.{first}.existingSecret=creds",
                f"secrets.{second}.existingSecret=creds",
            ]
        )


def test_one_existing_secret_is_fine_for_one_component(helm: Helm) -> None:
    manifests = helm.template(
        set_values=[
            "receiver.enabled=false",
            "secrets.worker.existingSecret=creds",
            "secrets.callbacks.existingSecret=creds",
        ]
    )
    assert not of_kind(manifests, "Secret")
    assert _secret_refs(_pod_spec(manifests, "worker")) == {"creds"}


def test_no_secret_env_when_no_secret_values(render: Render) -> None:
    manifests = render(UNAUTHENTICATED)
    assert not of_kind(manifests, "Secret")
    for name, spec in pod_specs(manifests):
        if name.startswith("Deployment/"):
            assert not SECRET_ENV & set(env_of(spec["containers"][0])), name
            assert not _secret_refs(spec), name


def test_sasl_credentials_only_with_sasl_protocol(helm: Helm) -> None:
    manifests = helm.template(SENTINEL_VALUES, set_values=["config.kafka.securityProtocol=SSL"])
    for component in READS:
        env = env_of(_pod_spec(manifests, component)["containers"][0])
        assert "BRIDGE_KAFKA__SASL_USERNAME" not in env, component
        assert "BRIDGE_KAFKA__SASL_PASSWORD" not in env, component
    assert "BRIDGE_FONESTORM__TOKEN" in env_of(_pod_spec(manifests, "worker")["containers"][0])


#: The schema registry credentials' env vars → their default key names.
REGISTRY_KEYS = {
    "BRIDGE_SCHEMAS__REGISTRY_USERNAME": "schema-registry-username",
    "BRIDGE_SCHEMAS__REGISTRY_PASSWORD": "schema-registry-password",
}


def test_existing_secrets(render: Render) -> None:
    manifests = render(FULL)
    assert not of_kind(manifests, "Secret")
    secrets = values_of(FULL)["secrets"]
    variables = {
        "fonestormToken": "BRIDGE_FONESTORM__TOKEN",
        "username": "BRIDGE_CALLBACKS__USERNAME",
        "password": "BRIDGE_CALLBACKS__PASSWORD",
        "kafkaSaslUsername": "BRIDGE_KAFKA__SASL_USERNAME",
        "kafkaSaslPassword": "BRIDGE_KAFKA__SASL_PASSWORD",
    }
    for component, groups in READS.items():
        env = env_of(_pod_spec(manifests, component)["containers"][0])
        expected = {
            variables[field]: {"name": secrets[group]["existingSecret"], "key": key}
            for group in groups
            for field, key in secrets[group]["keys"].items()
        }
        # Optional: an existing Secret made before the signing keys leaves dead letters unsigned
        # (the bridge warns at start) rather than keeping pods from starting.
        expected[SIGNING_KEYS[component][0]] = {
            "name": secrets[component]["existingSecret"],
            "key": "dead-letter-signing-key",
            "optional": True,
        }
        # So are the schema registry credentials: most deployments run in plain mode.
        for variable, key in REGISTRY_KEYS.items():
            expected[variable] = {
                "name": secrets[component]["existingSecret"],
                "key": key,
                "optional": True,
            }
        refs = {
            name: item["valueFrom"]["secretKeyRef"]
            for name, item in env.items()
            if name.startswith("BRIDGE_")
        }
        assert refs == expected, component
    assert secrets["worker"]["existingSecret"] not in _secret_refs(_pod_spec(manifests, "receiver"))


@pytest.mark.parametrize("group", ["callbacks", "receiver", "worker"])
def test_existing_secret_with_literal_values_is_refused(helm: Helm, group: str) -> None:
    literal = {"callbacks": "username", "receiver": "kafkaSaslUsername", "worker": "fonestormToken"}
    with pytest.raises(
        HelmError, match=f"secrets.{group}.existingSecret is set: leave the literal"
    ):
        helm.template(
            DEFAULT,
            set_values=[
                f"secrets.{group}.existingSecret=creds",
                f"secrets.{group}.{literal[group]}=oops",
            ],
        )


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


MTLS = ["kafkaTls.certKey=tls.crt", "kafkaTls.keyKey=tls.key"]


def test_each_component_mounts_its_own_client_certificate(helm: Helm) -> None:
    """With SSL the client certificate is the Kafka identity: each component gets its own."""
    manifests = helm.template(
        DEFAULT,
        set_values=[
            "config.kafka.securityProtocol=SSL",
            "kafkaTls.receiverSecret=receiver-tls",
            "kafkaTls.workerSecret=worker-tls",
            *MTLS,
        ],
    )
    data = configmap_data(manifests)
    assert data["BRIDGE_KAFKA__SSL_CERTFILE"] == "/etc/fonestorm-bridge/kafka-tls/tls.crt"
    for component in READS:
        volumes = {v["name"]: v for v in _pod_spec(manifests, component)["volumes"]}
        assert volumes["kafka-tls"]["secret"]["secretName"] == f"{component}-tls", component
        assert _secret_refs(_pod_spec(manifests, component)) == {
            "fsb-fonestorm-bridge-callbacks",
            f"{component}-tls",
        }


def test_one_client_certificate_for_both_is_refused_with_ssl(helm: Helm) -> None:
    shared = ["config.kafka.securityProtocol=SSL", "kafkaTls.existingSecret=tls", *MTLS]
    with pytest.raises(HelmError, match="the receiver and the worker would share one"):
        helm.template(DEFAULT, set_values=shared)
    # One component, or SASL naming the user: a shared certificate is no shared identity.
    helm.template(DEFAULT, set_values=[*shared, "worker.enabled=false"])
    helm.template(DEFAULT, set_values=[*shared, "config.kafka.securityProtocol=SASL_SSL"])


def test_a_component_without_tls_files_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError, match="the worker has no TLS files"):
        helm.template(DEFAULT, set_values=["kafkaTls.receiverSecret=receiver-tls"])
