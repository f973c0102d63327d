"""A thin client of the Confluent-compatible schema registry API (and Apicurio's v2 API).

Only what registry mode needs: compatibility levels, registration, look-ups by subject and by
id. Every failure is one of three errors: :class:`RegistryUnavailable` (no answer, a timeout, a
5xx: worth retrying), :class:`SchemaIncompatible` (409: the registry refuses the schema under
the subject's compatibility level) and :class:`RegistryRefused` (any other 4xx).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp

from bridge.errors import BridgeError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
#: Where Apicurio serves the Confluent-compatible API, relative to its root.
APICURIO_CCOMPAT = "/apis/ccompat/v7"
APICURIO_V2 = "/apis/registry/v2"


class RegistryError(BridgeError):
    """The schema registry did not do what registry mode needs."""

    code = "schema_registry"


class RegistryUnavailable(RegistryError):
    """No answer, a timeout or a 5xx: worth retrying."""

    code = "schema_registry_unavailable"
    retriable = True


class SchemaIncompatible(RegistryError):
    """409: the schema breaks the subject's compatibility level."""

    code = "schema_incompatible"


class RegistryRefused(RegistryError):
    """Any other 4xx (credentials, an invalid schema): retrying will not help."""

    code = "schema_registry_refused"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class NotFound(RegistryRefused):
    """404: no such subject, version or id."""


def apicurio_v2_url(url: str) -> str | None:
    """Apicurio's own API beside its Confluent-compatible ``url``; None for other registries."""
    base = url.rstrip("/")
    if base.endswith(APICURIO_CCOMPAT):
        return base.removesuffix(APICURIO_CCOMPAT) + APICURIO_V2
    return None


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in parts)


class RegistryClient:
    """Requests to one registry; the session is this client's own (:meth:`close` it)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.v2_url = apicurio_v2_url(self.url)
        headers = {}
        if username is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(username, password or "")
        # aiohttp drops the Authorization header on a redirect to another origin.
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._session.close()

    async def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": f"{CONTENT_TYPE}, application/json"}
        if data is not None:
            headers["Content-Type"] = CONTENT_TYPE
        try:
            async with self._session.request(method, url, data=data, headers=headers) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RegistryUnavailable(f"{method} {url}: {type(exc).__name__} {exc}") from exc
        if status < 300:
            try:
                return json.loads(text) if text else None
            except ValueError:
                raise RegistryUnavailable(f"{method} {url}: answer is not JSON") from None
        message = _message(text)
        what = f"{method} {url} answered {status}: {message}"
        if status == 409:
            raise SchemaIncompatible(what)
        if status == 404:
            raise NotFound(what, status=status)
        if status >= 500 or status in (408, 429):
            raise RegistryUnavailable(what)
        raise RegistryRefused(what, status=status)

    async def compatibility(self, subject: str) -> str | None:
        """The subject's own compatibility level, or None when it has none."""
        try:
            answer = await self._call("GET", f"{self.url}/config{_path(subject)}")
        except NotFound:
            return None
        level = answer.get("compatibilityLevel") or answer.get("compatibility")
        return str(level) if level else None

    async def set_compatibility(self, subject: str, level: str) -> None:
        """Set the subject's own compatibility level."""
        await self._call("PUT", f"{self.url}/config{_path(subject)}", {"compatibility": level})

    async def register(self, subject: str, schema: str) -> int:
        """Register ``schema`` (JSON Schema text) under ``subject``; its id (existing or new)."""
        body = {"schemaType": "JSON", "schema": schema}
        answer = await self._call("POST", f"{self.url}/subjects{_path(subject)}/versions", body)
        return int(answer["id"])

    async def version_of(self, subject: str, schema: str) -> tuple[int, int]:
        """(id, version) of ``schema`` registered under ``subject``."""
        body = {"schemaType": "JSON", "schema": schema}
        answer = await self._call("POST", f"{self.url}/subjects{_path(subject)}", body)
        return int(answer["id"]), int(answer["version"])

    async def ids_of_subject(self, subject: str) -> dict[int, int]:
        """Schema id → version, for every version of ``subject`` ({} when it has none)."""
        try:
            versions = await self._call("GET", f"{self.url}/subjects{_path(subject)}/versions")
        except NotFound:
            return {}
        out = {}
        for version in versions:
            answer = await self._call(
                "GET", f"{self.url}/subjects{_path(subject)}/versions/{int(version)}"
            )
            out[int(answer["id"])] = int(version)
        return out

    async def subjects_of_id(self, schema_id: int) -> list[tuple[str, int]]:
        """Every (subject, version) with schema ``schema_id``; [] when the id is unknown."""
        try:
            answer = await self._call("GET", f"{self.url}/schemas/ids/{schema_id}/versions")
        except NotFound:
            return []
        return [(str(item["subject"]), int(item["version"])) for item in answer]

    async def schema_by_id(self, schema_id: int) -> str:
        """The schema text with id ``schema_id``."""
        answer = await self._call("GET", f"{self.url}/schemas/ids/{schema_id}")
        return str(answer["schema"])

    async def apicurio_ids(self, subject: str, version: int) -> tuple[int, int] | None:
        """Apicurio's (global id, content id) of a subject's version; None elsewhere."""
        if self.v2_url is None:
            return None
        # The Confluent-compatible API keeps its subjects as artifacts of the default group.
        answer = await self._call(
            "GET",
            f"{self.v2_url}/groups/default/artifacts{_path(subject)}/versions/{version}/meta",
        )
        return int(answer["globalId"]), int(answer["contentId"])


def _message(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text[:500] or "(no body)"
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:1000]
    return text[:500]
