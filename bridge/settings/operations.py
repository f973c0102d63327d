"""Settings of dead letters, logs and tracing."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

#: Shortest signing key accepted: an HMAC-SHA256 key shorter than its 32-byte output is weaker.
MIN_SIGNING_KEY_CHARS = 32


class DeadLetterSettings(BaseModel):
    """Keys that sign dead letters, so that only what the bridge wrote can be replayed."""

    callback_signing_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key (secret, at least 32 characters) the receiver signs the "
        "dead letters of refused callbacks with, and `dead-letters replay` checks them with. "
        "Give it to receivers and to whoever replays, no one else. Unset: the receiver writes "
        "unsigned dead letters (WARNING at start), which replay refuses without "
        "`--allow-unsigned`.",
    )
    command_signing_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key (secret, at least 32 characters) the worker signs the dead "
        "letters of refused commands with, and `dead-letters replay` checks them with. Give it "
        "to workers and to whoever replays, never to receivers: with it, a forged dead letter "
        "would be replayed onto the command topic. Unset: as for the callback key.",
    )

    @field_validator("callback_signing_key", "command_signing_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SIGNING_KEY_CHARS:
            raise ValueError(f"must be at least {MIN_SIGNING_KEY_CHARS} characters long")
        return value

    def key_for(self, source: str) -> bytes | None:
        """The signing key of dead letters of ``source`` (``callback`` or ``command``)."""
        key = self.callback_signing_key if source == "callback" else self.command_signing_key
        return None if key is None else key.get_secret_value().encode("utf-8")


class LogSettings(BaseModel):
    """Logging output."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["json", "text"] = Field("json", description="`json` in production.")
    full_phone_numbers: bool = Field(
        False,
        description="Log phone numbers in full. Off, every log line (message and traceback) "
        "shows a number with all but its last four digits masked (`+*******0100`): any run of "
        "8 to 15 digits, alone or grouped with spaces, dashes or parentheses, counts as one.",
    )


class TracingSettings(BaseModel):
    """Tracing (on and exported as the standard `OTEL_*` variables say)."""

    trust_incoming_context: bool = Field(
        False,
        description="Continue the trace a callback names (W3C `traceparent` and `tracestate`) "
        "instead of starting a new one linked to it. Only behind an ingress that sets these "
        "headers itself: otherwise any sender picks the trace its callbacks join, whether they "
        "are sampled, and the `tracestate` every record of theirs carries. Baggage is never "
        "taken.",
    )
