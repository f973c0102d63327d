"""Settings from the environment, and schema files in sync with the models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.contracts import registry as schemas
from bridge.contracts.base import VersionedEvent
from bridge.contracts.registry import PUBLISHED_MODELS
from bridge.sandbox.settings import settings_table as sandbox_settings_table
from bridge.settings import (
    HttpSettings,
    Settings,
    SettingsError,
    env_name,
    load_settings,
    receiver_auth_problem,
    settings_table,
)

ROOT = Path(__file__).resolve().parents[2]


def test_nested_env_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("BRIDGE_HTTP__PORT", "9999")
    monkeypatch.setenv("BRIDGE_CALLBACKS__USERNAME", "fone")
    monkeypatch.setenv("BRIDGE_CALLBACKS__PASSWORD", "s3cret")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.http.port == 9999
    assert "s3cret" not in settings.model_dump_json()
    assert "s3cret" not in repr(settings)


def test_invalid_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_HTTP__PORT", "not-a-port")
    monkeypatch.setenv("BRIDGE_CALLBACKS__DEFAULT_REGION", "ZZ")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "BRIDGE_HTTP__PORT" in str(info.value)
    assert "BRIDGE_CALLBACKS__DEFAULT_REGION" in str(info.value)


def test_env_name() -> None:
    assert env_name(("kafka", "bootstrap_servers")) == "BRIDGE_KAFKA__BOOTSTRAP_SERVERS"


def _all_env_names() -> set[str]:
    names = set()
    for section, field in Settings.model_fields.items():
        assert field.annotation is not None
        for sub in field.annotation.model_fields:
            names.add(env_name((section, sub)))
    return names


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(BRIDGE_[A-Z0-9_]+)`", readme))
    missing = _all_env_names() - documented
    assert not missing, f"settings missing from README: {sorted(missing)}"
    assert settings_table() in readme, "run scripts/update-readme"


def test_schema_files_match_the_models() -> None:
    assert schemas.stale() == [], "run `fonestorm-bridge schemas export`"


def test_schema_ids_match_dataschema() -> None:
    for model in PUBLISHED_MODELS:
        assert model.json_schema()["$id"] == model.schema_id()
        assert model.schema_id().endswith(f"/v{model.schema_version}.json")


def test_sandbox_settings_are_documented_apart() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert sandbox_settings_table() in readme, "run scripts/update-readme"
    assert "BRIDGE_SANDBOX__" not in settings_table()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BRIDGE_CALLBACKS__USERNAME": "fone"}, "without a non-empty BRIDGE_CALLBACKS__PASSWORD"),
        (
            {"BRIDGE_CALLBACKS__USERNAME": "fone", "BRIDGE_CALLBACKS__PASSWORD": ""},
            "without a non-empty BRIDGE_CALLBACKS__PASSWORD",
        ),
        ({"BRIDGE_CALLBACKS__PASSWORD": "s3cret"}, "without BRIDGE_CALLBACKS__USERNAME"),
    ],
)
def test_callback_credentials_come_in_pairs_and_are_never_echoed(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert message in str(info.value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("callbacks", "refused"),
    [
        ({}, True),
        ({"allow_unauthenticated": True}, False),
        ({"username": "fone", "password": "s3cret"}, False),
    ],
)
def test_the_receiver_fails_closed_without_credentials(
    callbacks: dict[str, object], refused: bool
) -> None:
    problem = receiver_auth_problem(Settings.model_validate({"callbacks": callbacks}))
    assert (problem is not None) is refused
    if problem:
        assert "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED=true" in problem


def test_the_admin_port_must_differ_from_the_callback_port() -> None:
    with pytest.raises(ValueError, match="must differ"):
        HttpSettings(port=8080, admin_port=8080)
    assert HttpSettings(port=0, admin_port=0).admin_port == 0  # both chosen by the OS


def test_every_published_model_has_its_cloudevent_id_and_type() -> None:
    for model in PUBLISHED_MODELS:
        assert not getattr(model, "__abstractmethods__", None), model
        # The attributes come from fields it has, or it computes its id itself.
        named = {field for field in model.cloudevent if field is not None}
        assert named <= set(model.model_fields), model
        assert model.cloudevent.id is not None or model.ce_id is not VersionedEvent.ce_id, model


@pytest.mark.parametrize(
    ("value", "admin_port"),
    [(None, None), ("", None), ("9091", 9091), ("0", 0)],
    ids=["absent", "empty", "a port", "zero"],
)
def test_an_empty_admin_port_turns_it_off(
    monkeypatch: pytest.MonkeyPatch, value: str | None, admin_port: int | None
) -> None:
    """The image sets BRIDGE_HTTP__ADMIN_PORT; an environment can only override it, so an
    empty value must mean the single-port layout."""
    monkeypatch.delenv("BRIDGE_HTTP__ADMIN_PORT", raising=False)
    if value is not None:
        monkeypatch.setenv("BRIDGE_HTTP__ADMIN_PORT", value)
    assert load_settings().http.admin_port == admin_port
