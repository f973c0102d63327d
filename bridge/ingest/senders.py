"""Who may send callbacks: the source allow-list, then HTTP basic credentials.

Both are checked before anything else of a request is read or traced, and a sender refused
here gets 403 or 401 and nothing produced: a refused request is not a callback, so it is never
dead-lettered. Which address a request came from is :mod:`bridge.ingest.sources` (pure).
"""

from __future__ import annotations

import hmac

from aiohttp import BasicAuth, hdrs, web

from bridge.errors import Forbidden, Unauthorized
from bridge.ingest.sources import client_address, source_allowed
from bridge.settings import Settings
from bridge.web.errors import error_response

#: What a 401 asks for (RFC 7617: credentials are UTF-8).
WWW_AUTHENTICATE = 'Basic realm="fonestorm-bridge", charset="UTF-8"'


class SenderCheck:
    """The callback senders ``settings`` allow: :meth:`check` refuses the others."""

    def __init__(self, settings: Settings) -> None:
        self._networks = settings.callbacks.allowed_networks
        self._trusted_proxies = settings.http.trusted_proxies
        auth = settings.callbacks
        self._credentials: tuple[bytes, bytes] | None = None
        if auth.username:
            password = auth.password.get_secret_value() if auth.password else ""
            self._credentials = (auth.username.encode(), password.encode())

    def check(self, request: web.Request) -> None:
        """Raise :class:`Forbidden` for a source not allowed, then :class:`Unauthorized` for
        missing or wrong credentials; nothing when the sender may send callbacks."""
        self._check_source(request)
        self._check_auth(request)

    def _check_source(self, request: web.Request) -> None:
        if not self._networks:
            return
        forwarded = request.headers.getall(hdrs.X_FORWARDED_FOR, ())
        address = client_address(request.remote, forwarded, self._trusted_proxies)
        if not source_allowed(address, self._networks):
            raise Forbidden("this source is not allowed to send callbacks", source=str(address))

    def _check_auth(self, request: web.Request) -> None:
        if self._credentials is None:
            return
        given = basic_credentials(request.headers.get(hdrs.AUTHORIZATION, ""))
        if given is None:
            raise Unauthorized("basic authentication required")
        # Both compared, whatever the first says: the time taken tells nothing of either.
        user_ok = hmac.compare_digest(given[0], self._credentials[0])
        password_ok = hmac.compare_digest(given[1], self._credentials[1])
        if not (user_ok and password_ok):
            raise Unauthorized("wrong basic-auth credentials")


def basic_credentials(header: str) -> tuple[bytes, bytes] | None:
    """``(user, password)`` of a Basic ``Authorization`` header, None when absent or garbled.

    The bytes as sent: compared with the configured ones as bytes, whatever their encoding.
    """
    # RFC 7235 allows more than one space after the scheme; aiohttp's decoder takes one.
    scheme, _, encoded = header.partition(" ")
    try:
        # latin-1 maps each byte to one character, so encoding back gives the bytes sent.
        auth = BasicAuth.decode(f"{scheme} {encoded.strip()}", encoding="latin-1")
    except ValueError:
        return None
    return auth.login.encode("latin-1"), auth.password.encode("latin-1")


def refusal(error: Forbidden | Unauthorized) -> web.Response:
    """The answer to a refused sender: 403, or 401 asking for basic credentials."""
    response = error_response(error)
    if isinstance(error, Unauthorized):
        response.headers[hdrs.WWW_AUTHENTICATE] = WWW_AUTHENTICATE
    return response
