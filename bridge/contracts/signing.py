"""Dead letters signed by the bridge component that wrote them: HMAC-SHA256 over the value.

The dead-letter topic is written by the internet-facing receiver and by the worker, and
``dead-letters replay`` turns what it finds there back into call events and commands. A record
there proves nothing by its shape: anyone with WRITE on the topic can make one. So every
dead-letter writer adds the header :data:`SIGNATURE_HEADER`, an HMAC-SHA256 over the record's
value exactly as written (the bytes the replay parses, so nothing the replay uses lies outside
what is signed), with the key of its source: the receiver signs callbacks' dead letters, the
worker commands'. The receiver holds no key that signs a command, so a receiver taken over
cannot have a forged command replayed onto the command topic.

Pure: no I/O, tested as a table.
"""

from __future__ import annotations

import hashlib
import hmac

#: Record header with the signature of a dead letter's value.
SIGNATURE_HEADER = "bridge_signature"
_SCHEME = b"hmac-sha256="
# Domain separation: a MAC made with the same key for anything else never verifies here.
_DOMAIN = b"fonestorm-bridge/dead-letter/v1\n"


def sign(key: bytes, value: bytes) -> bytes:
    """The :data:`SIGNATURE_HEADER` value for a dead letter's ``value``: ``hmac-sha256=<hex>``."""
    return _SCHEME + hmac.new(key, _DOMAIN + value, hashlib.sha256).hexdigest().encode("ascii")


def verify(key: bytes, value: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is :func:`sign` of ``value`` with ``key`` (in constant time)."""
    return hmac.compare_digest(sign(key, value), signature)
