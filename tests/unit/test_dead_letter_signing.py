"""Dead letters signed by their writer: the HMAC, and the keys that make it (pure)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import ValidationError

from bridge.contracts.signing import sign, verify
from bridge.settings import DeadLetterSettings, SettingsError, load_settings

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
VALUE = b'{"dead_letter_id": "dl-1"}'


@pytest.mark.parametrize(
    ("key", "value", "signature", "valid"),
    [
        (KEY, VALUE, sign(KEY, VALUE), True),
        (KEY, VALUE + b" ", sign(KEY, VALUE), False),
        (OTHER_KEY, VALUE, sign(KEY, VALUE), False),
        # A plain HMAC of the value (no domain) is not a dead letter's signature.
        (KEY, VALUE, b"hmac-sha256=" + hmac.new(KEY, VALUE, hashlib.sha256).hexdigest().encode(),
         False),
        (KEY, VALUE, sign(KEY, VALUE).upper(), False),
        (KEY, VALUE, b"", False),
    ],
)  # fmt: skip
def test_signatures(key: bytes, value: bytes, signature: bytes, valid: bool) -> None:
    assert verify(key, value, signature) is valid


def test_a_signature_names_its_scheme() -> None:
    assert sign(KEY, VALUE).startswith(b"hmac-sha256=")
    assert len(sign(KEY, VALUE)) == len("hmac-sha256=") + 64


def test_signing_keys_are_secrets_of_at_least_32_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = DeadLetterSettings.model_validate(
        {"callback_signing_key": "c" * 32, "command_signing_key": "d" * 40}
    )
    assert settings.key_for("callback") == b"c" * 32
    assert settings.key_for("command") == b"d" * 40
    assert "c" * 32 not in repr(settings)
    assert DeadLetterSettings().key_for("command") is None
    with pytest.raises(ValidationError, match="at least 32 characters"):
        DeadLetterSettings.model_validate({"command_signing_key": "short"})
    monkeypatch.setenv("BRIDGE_DEAD_LETTERS__COMMAND_SIGNING_KEY", "too-short-secret")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "BRIDGE_DEAD_LETTERS__COMMAND_SIGNING_KEY: " in str(caught.value)
    assert "too-short-secret" not in str(caught.value)
