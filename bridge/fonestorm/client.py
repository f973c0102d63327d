"""Client of the FoneStorm calls API (create call, send/receive-notify registration).

Every failure is raised as a :class:`~bridge.errors.FoneStormError` subclass, so callers only
look at ``retriable``:

==========================================  ===========================  =====================
What happened                               Raised                       ``code``
==========================================  ===========================  =====================
TCP/TLS connect failed or timed out         FoneStormUnavailable         ``connect_failed``
(the request was certainly not sent)
read timeout, connection lost mid-request   FoneStormUnavailable         ``timeout`` /
(the request may have taken effect)                                      ``connection_error``
5xx                                         FoneStormUnavailable         ``server_error``
429                                         FoneStormRateLimited         (class default)
401, or no token configured                 FoneStormAuthError           (class default)
403 (this request refused, not the token)   FoneStormForbidden           (class default)
other 4xx, 1xx/3xx                          FoneStormRejected            (class default)
2xx whose body is not the documented shape  FoneStormRejected            ``bad_response``
or breaks off before its end
a header value aiohttp refuses (not sent)   FoneStormRejected            ``invalid_request``
==========================================  ===========================  =====================

A 2xx with a body we cannot read is *not* retriable on purpose: FoneStorm accepted the request,
so the call may well be ringing; retrying would risk a second call to the same person, while
the contract violation will not fix itself on retry. The worker reports it ``in_doubt``.

Error messages carry the HTTP status and a short excerpt of the response body, never the token.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, Field, SecretStr, ValidationError

from bridge.errors import (
    FoneStormAuthError,
    FoneStormForbidden,
    FoneStormRateLimited,
    FoneStormRejected,
    FoneStormUnavailable,
)
from bridge.fonestorm.templates import parse_retry_after
from bridge.settings import FoneStormSettings

log = logging.getLogger(__name__)

CallbackMethod = Literal["GET", "POST", "JSON"]

_EXCERPT_CHARS = 200


class CreatedCall(BaseModel):
    """The call FoneStorm created."""

    id: str = Field(min_length=1)


class CallbackRegistration(BaseModel):
    """A callback registration as FoneStorm echoed it back."""

    url: str
    method: str


class _CallEnvelope(BaseModel):
    call: CreatedCall


def new_session(trace_configs: list[aiohttp.TraceConfig] | None = None) -> aiohttp.ClientSession:
    """The HTTP session for FoneStorm: keep-alive pool, no cookie jar (the API uses a token).

    ``trace_configs``: e.g. the CLIENT spans of :func:`bridge.obs.http_spans.client_trace_configs`.
    """
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), trace_configs=trace_configs or None
    )


class FoneStormClient:
    """Calls the FoneStorm API over a caller-owned :class:`aiohttp.ClientSession`."""

    def __init__(self, session: aiohttp.ClientSession, settings: FoneStormSettings) -> None:
        self._session = session
        self._base_url = settings.base_url.rstrip("/")
        # An empty token is as good as none (and redacting "" would garble every excerpt).
        self._token = (
            settings.token if settings.token and settings.token.get_secret_value() else None
        )
        self._timeout = aiohttp.ClientTimeout(
            total=settings.read_timeout, sock_connect=settings.connect_timeout
        )

    async def create_call(
        self,
        fonenumber: str,
        to: str,
        tts: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> CreatedCall:
        """Place a call from our ``fonenumber`` to ``to``, optionally speaking ``tts``."""
        body: dict[str, str] = {"fonenumber": fonenumber, "to": to}
        if tts is not None:
            body["tts"] = tts
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        status, data = await self._post("/calls", body, headers)
        try:
            call = _CallEnvelope.model_validate(data).call
        except ValidationError:
            raise self._bad_response("/calls", status, data) from None
        # DEBUG: the worker logs the command's outcome, with this call id, at INFO.
        log.debug(
            "FoneStorm created call %s from %s (idempotency key %s)",
            call.id,
            fonenumber,
            idempotency_key,
        )
        return call

    async def set_send_notify(
        self,
        fonenumber: str,
        url: str,
        method: CallbackMethod,
        username: str | None = None,
        password: SecretStr | None = None,
    ) -> CallbackRegistration:
        """Register the callback for calls made from ``fonenumber`` (outbound)."""
        return await self._register(
            "/calls/send_notify",
            fonenumber=fonenumber,
            url=url,
            method=method,
            username=username,
            password=password,
        )

    async def set_receive_notify(
        self,
        fonenumber: str,
        url: str,
        method: CallbackMethod,
        username: str | None = None,
        password: SecretStr | None = None,
    ) -> CallbackRegistration:
        """Register the callback for calls received on ``fonenumber`` (inbound)."""
        return await self._register(
            "/calls/receive_notify",
            fonenumber=fonenumber,
            url=url,
            method=method,
            username=username,
            password=password,
        )

    async def _register(
        self,
        path: str,
        *,
        fonenumber: str,
        url: str,
        method: CallbackMethod,
        username: str | None,
        password: SecretStr | None,
    ) -> CallbackRegistration:
        body = {"fonenumber": fonenumber, "method": method, "url": url}
        if username is not None:
            body["url_username"] = username
        if password is not None:
            body["url_password"] = password.get_secret_value()
        status, data = await self._post(path, body, {})
        registration = _parse_registration(data)
        if registration is None:
            if not (isinstance(data, dict) and isinstance(data.get("fonenumber"), dict)):
                raise self._bad_response(path, status, data)
            # The FoneNumber object is undocumented; a 2xx still means the registration took.
            log.warning(
                "FoneStorm %s answered a FoneNumber object without the callback; "
                "assuming the requested one",
                path,
            )
            registration = CallbackRegistration(url=url, method=method)
        log.info(
            "FoneStorm %s for %s: %s %s", path, fonenumber, registration.method, registration.url
        )
        return registration

    async def _post(
        self, path: str, body: dict[str, str], extra_headers: dict[str, str]
    ) -> tuple[int, Any]:
        """POST ``body`` as JSON; the status and parsed JSON of a 2xx answer, else raise."""
        if self._token is None:
            raise FoneStormAuthError("no FoneStorm API token configured", code="no_token")
        url = self._base_url + path
        headers = {
            "token": self._token.get_secret_value(),
            "Accept": "application/json",
            **extra_headers,
        }
        try:
            async with self._session.post(
                url, json=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                raw = await self._read_body(path, resp)
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            raise FoneStormUnavailable(
                f"POST {path}: cannot connect to FoneStorm ({type(exc).__name__}: {exc})",
                code="connect_failed",
            ) from exc
        except TimeoutError as exc:
            raise FoneStormUnavailable(
                f"POST {path}: no answer within {self._timeout.total}s", code="timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            raise FoneStormUnavailable(
                f"POST {path}: {type(exc).__name__}: {exc}", code="connection_error"
            ) from exc
        except ValueError as exc:
            # aiohttp refuses a header value with CR/LF before anything is sent.
            raise FoneStormRejected(
                f"POST {path}: request not sent: {exc}", code="invalid_request"
            ) from exc

        if 200 <= status < 300:
            try:
                return status, json.loads(raw)
            except ValueError:
                raise self._bad_response(path, status, raw) from None
        message = f"POST {path}: FoneStorm answered {status}: {self._excerpt(raw)}"
        if status >= 500:
            raise FoneStormUnavailable(message, status=status, code="server_error")
        if status == 429:
            raise FoneStormRateLimited(message, retry_after=parse_retry_after(retry_after))
        if status == 401:
            raise FoneStormAuthError(message, status=status)
        if status == 403:
            raise FoneStormForbidden(message, status=status)
        raise FoneStormRejected(message, status=status)

    async def _read_body(self, path: str, resp: aiohttp.ClientResponse) -> bytes:
        """The body; for a 2xx whose body breaks off, ``bad_response`` (the call may exist)."""
        if not 200 <= resp.status < 300:
            return await resp.read()
        try:
            return await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            # FoneStorm accepted the request: a retry could ring twice, like any 2xx we
            # cannot read, so this must not look like a connection that may be retried.
            raise FoneStormRejected(
                f"POST {path}: FoneStorm answered {resp.status} but its body could not be read "
                f"({type(exc).__name__}: {exc})",
                status=resp.status,
                code="bad_response",
            ) from exc

    def _bad_response(self, path: str, status: int, body: Any) -> FoneStormRejected:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return FoneStormRejected(
            f"POST {path}: FoneStorm answered {status} with an unexpected body: "
            f"{self._excerpt(raw)}",
            status=status,
            code="bad_response",
        )

    def _excerpt(self, raw: bytes) -> str:
        text = " ".join(raw.decode("utf-8", errors="replace").split())
        if self._token is not None:
            # A proxy or a debug page could echo our request headers back.
            text = text.replace(self._token.get_secret_value(), "***")
        if len(text) > _EXCERPT_CHARS:
            text = text[:_EXCERPT_CHARS] + "…"
        return text or "(empty body)"


def _parse_registration(data: Any) -> CallbackRegistration | None:
    """Read ``{"callback": {...}}`` (the doc's example) or ``{"fonenumber": {...}}`` (its table)."""
    if not isinstance(data, dict):
        return None
    for key in ("callback", "fonenumber"):
        inner = data.get(key)
        if isinstance(inner, dict):
            # The FoneNumber object is undocumented: look for the callback directly or nested.
            for candidate in (inner, inner.get("callback")):
                try:
                    return CallbackRegistration.model_validate(candidate)
                except ValidationError:
                    continue
    return None
