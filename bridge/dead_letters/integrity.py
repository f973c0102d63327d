"""Whether a dead letter was written by the bridge: its signature, checked (pure, a table).

The dead-letter topic is not trusted: ``replay`` acts only on dead letters whose
:data:`~bridge.contracts.signing.SIGNATURE_HEADER` verifies with the key of their source
(``BRIDGE_DEAD_LETTERS__CALLBACK_SIGNING_KEY`` or ``..._COMMAND_SIGNING_KEY``). An operator can
let unsigned ones through (``--allow-unsigned``: dead letters of releases or writers without a
key); a signature that does not match is refused whatever the flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from bridge.contracts.signing import verify

#: ``signed``: the signature verifies; ``unsigned``: there is none; ``no_key``: there is one but
#: no key here to check it; ``bad_signature``: it does not verify, or there are several.
Integrity = Literal["signed", "unsigned", "no_key", "bad_signature"]

_KEY_VARIABLE = {
    "callback": "BRIDGE_DEAD_LETTERS__CALLBACK_SIGNING_KEY",
    "command": "BRIDGE_DEAD_LETTERS__COMMAND_SIGNING_KEY",
}


def check(value: bytes, signatures: Sequence[bytes], key: bytes | None) -> Integrity:
    """What the signature headers of a dead letter (``value``) show, given its source's key."""
    if not signatures:
        return "unsigned"
    if len(signatures) > 1:
        return "bad_signature"  # the writers add one; a second came from someone else
    if key is None:
        return "no_key"
    return "signed" if verify(key, value, signatures[0]) else "bad_signature"


def refusal(integrity: Integrity, source: str, *, allow_unsigned: bool) -> tuple[str, str] | None:
    """Why a dead letter of ``source`` must not be replayed (``(code, reason)``), or None."""
    variable = _KEY_VARIABLE.get(source, "the signing key")
    if integrity == "signed":
        return None
    if integrity == "bad_signature":
        return (
            "bad_signature",
            f"its signature does not verify with {variable}: the bridge did not write it as it "
            "is (forged or altered), so it is never replayed",
        )
    if allow_unsigned:
        return None
    if integrity == "unsigned":
        return (
            "unsigned",
            "it has no signature, so nothing shows the bridge wrote it; replay it only if you "
            "trust every writer of the topic, with --allow-unsigned",
        )
    return (
        "no_signing_key",
        f"{variable} is not set here, so its signature cannot be checked: set it (or replay "
        "with --allow-unsigned)",
    )
