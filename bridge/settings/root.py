"""The one ``Settings`` of the bridge, loading it from the environment, and its table."""

from __future__ import annotations

import pydantic_settings
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridge.settings.http import CallbackSettings, HttpSettings
from bridge.settings.kafka import KafkaSettings, SchemaSettings, TopicSettings
from bridge.settings.operations import DeadLetterSettings, LogSettings, TracingSettings
from bridge.settings.worker import REVOKE_SHARE, FoneStormSettings, WorkerSettings

ENV_PREFIX = "BRIDGE_"
ENV_NESTED_DELIMITER = "__"


class Settings(BaseSettings):
    """All settings of the bridge."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="ignore",
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)
    fonestorm: FoneStormSettings = Field(default_factory=FoneStormSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    dead_letters: DeadLetterSettings = Field(default_factory=DeadLetterSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    schemas: SchemaSettings = Field(default_factory=SchemaSettings)

    @property
    def worker_drain_timeout(self) -> float:
        """Seconds a create-call request out at SIGTERM gets to finish and record its answer:
        the shutdown timeout, or as long as a rebalance gives it, whichever is longer."""
        return max(self.http.shutdown_timeout, self.worker.rebalance_timeout * REVOKE_SHARE)

    @model_validator(mode="after")
    def _revoke_budget_covers_a_request(self) -> Settings:
        # A request sent before a rebalance must be able to finish and record its answer
        # within the revoke budget, or the next owner reports in_doubt for a call we know.
        needed = self.fonestorm.read_timeout + 2 * self.kafka.produce_timeout
        if self.worker.rebalance_timeout * REVOKE_SHARE < needed:
            raise ValueError(
                f"BRIDGE_WORKER__REBALANCE_TIMEOUT={self.worker.rebalance_timeout:g}: "
                f"{REVOKE_SHARE:.0%} of it must cover BRIDGE_FONESTORM__READ_TIMEOUT + 2 x "
                f"BRIDGE_KAFKA__PRODUCE_TIMEOUT ({needed:g}s)"
            )
        return self


_SECRET_FIELDS = frozenset(
    {
        "password",
        "token",
        "sasl_password",
        "callback_signing_key",
        "command_signing_key",
        "registry_password",
    }
)


class SettingsError(Exception):
    """Settings could not be loaded; the message names every offending variable."""


def receiver_auth_problem(settings: Settings) -> str | None:
    """Why the receiver must not start (no credentials and no explicit opt-out), or None."""
    callbacks = settings.callbacks
    if callbacks.authenticated or callbacks.allow_unauthenticated:
        return None
    return (
        "the callback receiver needs basic-auth credentials: set BRIDGE_CALLBACKS__USERNAME and "
        "BRIDGE_CALLBACKS__PASSWORD (and register them with FoneStorm), or set "
        "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED=true to accept callbacks from anyone"
    )


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable that sets the field at ``loc``."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part) for part in loc).upper()


def load_settings() -> Settings:
    """Read settings from the environment, or raise :class:`SettingsError` naming the variables.

    Its message has one line per offending variable, nothing else: what the process prints
    before it stops.
    """
    try:
        return Settings()
    except pydantic_settings.SettingsError as exc:
        # Only a variable that sets a whole section as JSON is still decoded by pydantic-settings.
        section = str(exc).split('"')[1] if str(exc).count('"') >= 2 else "?"
        raise SettingsError(
            f"{ENV_PREFIX}{section.upper()}: not valid JSON ({exc.__cause__ or exc}); set "
            f"{ENV_PREFIX}{section.upper()}{ENV_NESTED_DELIMITER}<FIELD> variables instead"
        ) from None
    except ValidationError as exc:
        raise SettingsError("\n".join(_problems(exc))) from None


def _problems(exc: ValidationError) -> list[str]:
    """One line per variable: every error about it, and the value given unless secret."""
    cross_field: list[str] = []
    by_variable: dict[str, list[str]] = {}
    given: dict[str, object] = {}
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if len(loc) < 2:
            # A check across fields: its message names the variables, and its input is a
            # whole section, secrets included, so it is never shown.
            cross_field.append(err["msg"].removeprefix("Value error, "))
            continue
        # (section, field) names the variable; anything deeper is a list item's index.
        name = env_name(loc[:2])
        messages = by_variable.setdefault(name, [])
        message = err["msg"].removeprefix("Value error, ")
        if len(loc) > 2 and isinstance(loc[2], int):
            message = f"item {loc[2]}: {message}"
        if message not in messages:
            messages.append(message)
        if len(loc) == 2 and str(loc[1]) not in _SECRET_FIELDS:
            given[name] = err.get("input")
    lines = [
        f"{name}: {'; '.join(messages)}" + (f" (got {given[name]!r})" if name in given else "")
        for name, messages in by_variable.items()
    ]
    return lines + cross_field


def settings_table() -> str:
    """Markdown table of every setting: variable, default, description (for the README)."""
    rows = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for name, sub in model.model_fields.items():
            default = sub.get_default(call_default_factory=True)
            if isinstance(default, SecretStr):
                default = "(secret)"
            shown = "" if default is None else f"`{default}`"
            description = (sub.description or "").replace("|", "\\|")
            rows.append(f"| `{env_name((section, name))}` | {shown} | {description} |")
    return "\n".join(rows)
