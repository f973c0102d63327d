"""List settings from one variable: comma-separated or a JSON list; a bad one names itself."""

from __future__ import annotations

import ipaddress
import os

import pytest

from bridge.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BRIDGE_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.0/8", ["10.0.0.0/8"]),
        ("10.0.0.0/8,192.168.0.0/16", ["10.0.0.0/8", "192.168.0.0/16"]),
        (" 10.0.0.0/8 , fd00::/8 ,", ["10.0.0.0/8", "fd00::/8"]),
        ('["10.0.0.0/8", "fd00::/8"]', ["10.0.0.0/8", "fd00::/8"]),
        ("[]", []),
        ("", []),
    ],
)
def test_network_lists_read_both_forms(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("BRIDGE_CALLBACKS__ALLOWED_NETWORKS", value)
    monkeypatch.setenv("BRIDGE_HTTP__TRUSTED_PROXIES", value)
    settings = load_settings()
    networks = [ipaddress.ip_network(n) for n in expected]
    assert settings.callbacks.allowed_networks == networks
    assert settings.http.trusted_proxies == networks


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        (
            "BRIDGE_FONESTORM__FONENUMBERS",
            "3215551081, +13215551082",
            ["3215551081", "+13215551082"],
        ),
        ("BRIDGE_FONESTORM__FONENUMBERS", '["3215551081"]', ["3215551081"]),
        ("BRIDGE_WORKER__ALLOWED_DESTINATIONS", "+1,+44", ["+1", "+44"]),
        ("BRIDGE_WORKER__DENIED_DESTINATIONS", '["+1900", "+1 976"]', ["+1900", "+1976"]),
    ],
)
def test_string_lists_read_both_forms(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, read: list[str]
) -> None:
    monkeypatch.setenv(name, value)
    settings = load_settings()
    section, field = name.removeprefix("BRIDGE_").lower().split("__")
    assert getattr(getattr(settings, section), field) == read


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("BRIDGE_CALLBACKS__ALLOWED_NETWORKS", "[10.0.0.0/8", "not a valid JSON list"),
        ("BRIDGE_CALLBACKS__ALLOWED_NETWORKS", '{"a": 1}', "is not a network in CIDR notation"),
        ("BRIDGE_HTTP__TRUSTED_PROXIES", "10.0.0.0/33", "'10.0.0.0/33' is not a network"),
        ("BRIDGE_HTTP__TRUSTED_PROXIES", '["10.0.0.1/8"]', "'10.0.0.1/8' is not a network"),
        ("BRIDGE_WORKER__ALLOWED_DESTINATIONS", "+1,44", "'44' is not an ISO country code"),
        ("BRIDGE_WORKER__DENIED_DESTINATIONS", "+1900,44", "'44' is not an E.164 prefix"),
        ("BRIDGE_FONESTORM__FONENUMBERS", '["+1", 2', "not a valid JSON list"),
        ("BRIDGE_FONESTORM__FONENUMBERS", "[1, 2]", "item 0: Input should be a valid string"),
    ],
)
def test_a_bad_list_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, said: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"{name}: ")
    assert said in message
    assert "\n" not in message


def test_a_bad_json_section_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_HTTP", "{port: 1}")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith("BRIDGE_HTTP: not valid JSON")
    assert "\n" not in str(info.value)
