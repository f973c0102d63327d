"""Callback basic auth is on by default: the chart refuses to render a receiver without
credentials unless `config.callbacks.allowUnauthenticated` opts out, refuses half a pair of
credentials, and refuses an Ingress without TLS that would carry them in plain HTTP.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bridge.settings import Settings, SettingsError, load_settings, receiver_auth_problem
from tests.chart.chartlib import (
    DEFAULT,
    FULL,
    SENTINEL_VALUES,
    UNAUTHENTICATED,
    WORKER_ONLY,
    configmap_data,
)
from tests.chart.helmlib import Helm, HelmError, Manifest, Render, env_of, of_kind, one

ALLOW = "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED"
CREDENTIALS = ["secrets.callbacks.username=fonestorm", "secrets.callbacks.password=s3cret"]
OPT_OUT = ["config.callbacks.allowUnauthenticated=true"]
NO_CREDENTIALS = "the callback receiver needs basic-auth credentials"
PLAIN_HTTP_INGRESS = "receiver.ingress is enabled without receiver.ingress.tls"


def _refusal(helm: Helm, *values: Path, set_values: list[str]) -> str:
    with pytest.raises(HelmError) as failure:
        helm.template(*values, set_values=set_values)
    return failure.value.stderr


def _receiver_env(manifests: list[Manifest]) -> dict[str, Manifest]:
    deployment = one(manifests, "Deployment", "-receiver")
    return env_of(deployment["spec"]["template"]["spec"]["containers"][0])


# ---------------------------------------------------------------- no credentials


def test_chart_defaults_are_refused_without_credentials(helm: Helm) -> None:
    stderr = _refusal(helm, set_values=[])
    assert NO_CREDENTIALS in stderr, stderr
    # The message names what to set, and the opt-out.
    for value in (
        "secrets.callbacks.username",
        "secrets.callbacks.password",
        "secrets.callbacks.existingSecret",
        "secrets.callbacks.keys.username",
        "secrets.callbacks.keys.password",
        "config.callbacks.allowUnauthenticated=true",
    ):
        assert value in stderr, (value, stderr)


def test_explicit_false_opt_out_is_refused_too(helm: Helm) -> None:
    stderr = _refusal(helm, set_values=["config.callbacks.allowUnauthenticated=false"])
    assert NO_CREDENTIALS in stderr, stderr


def test_existing_secret_without_callback_keys_is_refused(helm: Helm) -> None:
    stderr = _refusal(
        helm,
        set_values=[
            "secrets.callbacks.existingSecret=creds",
            "secrets.callbacks.keys.username=",
            "secrets.callbacks.keys.password=",
        ],
    )
    assert NO_CREDENTIALS in stderr, stderr


def test_opt_out_renders_without_credentials(render: Render) -> None:
    manifests = render(UNAUTHENTICATED)
    assert configmap_data(manifests)[ALLOW] == "true"
    env = _receiver_env(manifests)
    assert "BRIDGE_CALLBACKS__USERNAME" not in env
    assert "BRIDGE_CALLBACKS__PASSWORD" not in env
    assert not of_kind(manifests, "Secret")  # nothing secret to hold


def test_worker_only_needs_no_callback_credentials(render: Render) -> None:
    manifests = render(WORKER_ONLY)
    assert ALLOW not in configmap_data(manifests)
    assert not of_kind(manifests, "Ingress")


# ---------------------------------------------------------------- credentials come in pairs


@pytest.mark.parametrize(
    ("given", "missing"),
    [("username", "password"), ("password", "username")],
)
@pytest.mark.parametrize("extra", [[], OPT_OUT, ["receiver.enabled=false"]], ids=str)
def test_half_a_pair_of_literal_credentials_is_refused(
    helm: Helm, given: str, missing: str, extra: list[str]
) -> None:
    # Refused with the opt-out and for the worker alone too: every component loads the
    # callback settings, and the bridge refuses a user without a password and the reverse.
    stderr = _refusal(helm, set_values=[f"secrets.callbacks.{given}=x", *extra])
    assert "secrets.callbacks.username and secrets.callbacks.password go together" in stderr, stderr


def test_half_a_pair_of_existing_secret_keys_is_refused(helm: Helm) -> None:
    stderr = _refusal(
        helm,
        set_values=["secrets.callbacks.existingSecret=creds", "secrets.callbacks.keys.password="],
    )
    assert "secrets.callbacks.keys.username and secrets.callbacks.keys.password go together" in (
        stderr
    ), stderr


def test_literal_credentials_without_key_names_are_refused(helm: Helm) -> None:
    stderr = _refusal(helm, set_values=[*CREDENTIALS, "secrets.callbacks.keys.username="])
    assert "the credentials would not reach the pods" in stderr, stderr


# ---------------------------------------------------------------- credentials given


def test_literal_credentials_render(render: Render) -> None:
    manifests = render(DEFAULT)
    assert ALLOW not in configmap_data(manifests)
    env = _receiver_env(manifests)
    for variable, key in (
        ("BRIDGE_CALLBACKS__USERNAME", "callbacks-username"),
        ("BRIDGE_CALLBACKS__PASSWORD", "callbacks-password"),
    ):
        assert env[variable]["valueFrom"]["secretKeyRef"] == {
            "name": "fsb-fonestorm-bridge-callbacks",
            "key": key,
        }


def test_existing_secret_with_keys_renders(helm: Helm) -> None:
    manifests = helm.template(
        set_values=[
            "secrets.callbacks.existingSecret=creds",
            "secrets.callbacks.keys.username=user",
            "secrets.callbacks.keys.password=pass",
        ]
    )
    assert not of_kind(manifests, "Secret")
    assert ALLOW not in configmap_data(manifests)
    env = _receiver_env(manifests)
    assert env["BRIDGE_CALLBACKS__USERNAME"]["valueFrom"]["secretKeyRef"] == {
        "name": "creds",
        "key": "user",
    }
    assert env["BRIDGE_CALLBACKS__PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "creds",
        "key": "pass",
    }


# ---------------------------------------------------------------- Ingress needs TLS with auth


@pytest.mark.parametrize(
    "credentials",
    [CREDENTIALS, ["secrets.callbacks.existingSecret=creds"], [*CREDENTIALS, *OPT_OUT]],
    ids=["literal", "existing-secret", "literal-and-opt-out"],
)
def test_ingress_without_tls_is_refused_with_auth(helm: Helm, credentials: list[str]) -> None:
    stderr = _refusal(helm, set_values=[*credentials, "receiver.ingress.enabled=true"])
    assert PLAIN_HTTP_INGRESS in stderr, stderr
    assert "plain HTTP" in stderr, stderr


def test_ingress_with_tls_renders_with_auth(helm: Helm, render: Render) -> None:
    ingress = one(render(FULL), "Ingress")
    assert ingress["spec"]["tls"]
    manifests = helm.template(
        DEFAULT,
        set_values=[
            "receiver.ingress.enabled=true",
            "receiver.ingress.tls[0].secretName=bridge-tls",
            "receiver.ingress.tls[0].hosts[0]=fonestorm-bridge.example.com",
        ],
    )
    assert one(manifests, "Ingress")["spec"]["tls"][0]["secretName"] == "bridge-tls"


def test_ingress_without_tls_renders_when_https_ends_upstream(helm: Helm) -> None:
    manifests = helm.template(
        DEFAULT,
        set_values=["receiver.ingress.enabled=true", "receiver.ingress.tlsTerminatedUpstream=true"],
    )
    assert "tls" not in one(manifests, "Ingress")["spec"]


def test_ingress_without_tls_renders_without_auth(render: Render) -> None:
    # No credentials to expose: the opt-out values enable a plain-HTTP Ingress.
    ingress = one(render(UNAUTHENTICATED), "Ingress")
    assert "tls" not in ingress["spec"]


# ---------------------------------------------------------------- ConfigMap and the bridge


@pytest.mark.parametrize(
    ("set_values", "expected"),
    [([], None), (["config.callbacks.allowUnauthenticated=false"], "false"), (OPT_OUT, "true")],
    ids=["unset", "false", "true"],
)
def test_configmap_carries_opt_out_only_when_set(
    helm: Helm, set_values: list[str], expected: str | None
) -> None:
    data = configmap_data(helm.template(DEFAULT, set_values=set_values))
    assert data.get(ALLOW) == expected


def _load(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name in list(os.environ):
        if name.startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.mark.parametrize(
    "values", [UNAUTHENTICATED, DEFAULT, SENTINEL_VALUES], ids=["opt-out", "default", "sentinels"]
)
def test_rendered_auth_settings_let_the_receiver_start(
    render: Render, values: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the chart renders is what the bridge accepts: with the receiver's ConfigMap and
    Secret values in the environment, its start-up auth check passes."""
    manifests = render(values)
    secrets = {
        (secret["metadata"]["name"], key): base64.b64decode(value).decode()
        for secret in of_kind(manifests, "Secret")
        for key, value in secret["data"].items()
    }
    env = dict(configmap_data(manifests))
    for name, item in _receiver_env(manifests).items():
        ref = item["valueFrom"]["secretKeyRef"]
        env[name] = secrets[ref["name"], ref["key"]]
    settings = _load(monkeypatch, env)
    assert receiver_auth_problem(settings) is None
    assert settings.callbacks.authenticated is (values != UNAUTHENTICATED)
    assert settings.callbacks.allow_unauthenticated is (values == UNAUTHENTICATED)
    assert settings.fonestorm.token is None  # the receiver starts without one


def test_bridge_refuses_what_the_chart_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's refusals mirror the bridge's own: no credentials and no opt-out, or half a
    pair of credentials."""
    assert receiver_auth_problem(_load(monkeypatch, {}))
    for half in ("BRIDGE_CALLBACKS__USERNAME", "BRIDGE_CALLBACKS__PASSWORD"):
        with pytest.raises(SettingsError, match=half):
            _load(monkeypatch, {half: "x"})
