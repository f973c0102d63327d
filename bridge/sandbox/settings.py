"""Settings of the sandbox, read from ``BRIDGE_SANDBOX__*`` variables.

Its own settings class, not a section of the bridge's: the production settings table holds
nothing that only the look-alike needs (such as its default token).
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "BRIDGE_SANDBOX__"


class SandboxSettings(BaseSettings):
    """The FoneStorm look-alike (``fonestorm-bridge sandbox``) for local runs and tests."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    host: str = Field("127.0.0.1", description="Address the sandbox listens on.")
    port: int = Field(8090, ge=0, le=65535, description="Port the sandbox listens on.")
    token: SecretStr = Field(
        SecretStr("sandbox-token"), description="API token the sandbox accepts."
    )
    account_code: str = Field("SANDBOX", description="Account code put in callbacks.")
    ring_delay: float = Field(0.05, ge=0, description="Seconds from create-call to BEGIN.")
    call_duration: float = Field(0.1, ge=0, description="Seconds from BEGIN to END.")
    latency: float = Field(0.0, ge=0, description="Added latency of every API response (s).")
    error_rate: float = Field(0.0, ge=0, le=1, description="Share of API requests answered 500.")


def settings_table() -> str:
    """Markdown table of the sandbox's settings (for the README's sandbox section)."""
    rows = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for name, field in SandboxSettings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "`(secret)`" if isinstance(default, SecretStr) else f"`{default}`"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {description} |")
    return "\n".join(rows)
