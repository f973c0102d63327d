"""The chart's values: the `config` ConfigMap matches the bridge's Settings, the values schema
is strict and complete, and values.yaml and the README's values table are documented.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bridge.cli import build_parser
from bridge.settings import Settings
from tests.chart.chartlib import (
    ALL_IDS,
    ALL_VALUES,
    DEFAULT,
    FULL,
    SECRET_ENV,
    configmap_data,
    values_of,
)
from tests.chart.helmlib import (
    CHART_DIR,
    RELEASE,
    Helm,
    HelmError,
    Render,
    containers,
    env_of,
    pod_specs,
)
from tests.chart.values_doc import README, documented_values, lookup, render_readme, value_lines
from tests.chart.values_doc import VALUES as VALUES_YAML

#: Settings the chart does not take from `config` (set otherwise, or meaningless in a pod).
NOT_IN_CONFIG = {
    *SECRET_ENV,
    "BRIDGE_HTTP__HOST",  # the image listens on 0.0.0.0
    "BRIDGE_KAFKA__SSL_CAFILE",  # file paths come from `kafkaTls`
    "BRIDGE_KAFKA__SSL_CERTFILE",
    "BRIDGE_KAFKA__SSL_KEYFILE",
}


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
    """A setting added to bridge/settings/ needs a `config` value (or a reason not to)."""
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
        assert settings.http.admin_port == 9091
        assert settings.kafka.ssl_cafile == "/etc/kafka-tls/ca.crt"
    expected_servers = config.get("kafka", {}).get("bootstrapServers", "kafka:9092")
    assert settings.kafka.bootstrap_servers == expected_servers
    # The chart's default admin port reaches the bridge; an explicit null leaves it unset.
    admin = config.get("http", {}).get("adminPort", chart_default("config", "http", "adminPort"))
    assert settings.http.admin_port == admin
    assert settings.http.admin_port != settings.http.port


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
    data = configmap_data(render(DEFAULT))
    assert data == {
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": "kafka:9092",
        "BRIDGE_KAFKA__SECURITY_PROTOCOL": "PLAINTEXT",
        # Not the bridge's default (unset): the chart keeps /metrics off the callback port.
        "BRIDGE_HTTP__ADMIN_PORT": "9090",
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
    "a FoneStorm token for the receiver": ["--set", "secrets.receiver.fonestormToken=abc"],
    "a dead-letter signing key under 32 characters": [
        "--set",
        "secrets.worker.deadLetterSigningKey=" + "k" * 31,
    ],
    "the one-Secret layout of old": ["--set", "secrets.fonestormToken=abc"],
    "root allowed": ["--set", "podSecurityContext.runAsNonRoot=false"],
    "privilege escalation": ["--set", "securityContext.allowPrivilegeEscalation=true"],
    "capabilities not dropped": ["--set", "securityContext.capabilities.drop={NET_RAW}"],
    "seccomp unconfined": ["--set", "podSecurityContext.seccompProfile.type=Unconfined"],
    "negative replicas": ["--set", "worker.replicas=-1"],
    "bad quantity": ["--set", "receiver.resources.limits.memory=lots"],
    "bad preStop mode": ["--set", "lifecycle.preStopMode=httpGet"],
    "privileged http port": ["--set", "config.http.port=80"],
    "privileged admin port": ["--set", "config.http.adminPort=90"],
    "admin port out of range": ["--set", "config.http.adminPort=70000"],
    "admin port as a string": ["--set-string", "config.http.adminPort=9090"],
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
    assert "| `secrets.worker.fonestormToken` |" in readme
    assert "| `receiver.autoscaling.maxReplicas` |" in readme
