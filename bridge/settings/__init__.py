"""Configuration, read from ``BRIDGE_*`` environment variables (nested with ``__``).

Example: ``BRIDGE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092``. Every field is documented in the
README's settings table; keep the two in step (a unit test checks it). One nested model per
concern, in a module per group of them; :class:`Settings` (``root``) holds them all.
"""

from bridge.settings.http import CallbackSettings, HttpSettings
from bridge.settings.kafka import KafkaSettings, SchemaSettings, TopicSettings
from bridge.settings.operations import (
    MIN_SIGNING_KEY_CHARS,
    DeadLetterSettings,
    LogSettings,
    TracingSettings,
)
from bridge.settings.root import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    Settings,
    SettingsError,
    env_name,
    load_settings,
    receiver_auth_problem,
    settings_table,
)
from bridge.settings.worker import (
    ANY_DESTINATION,
    REVOKE_SHARE,
    FoneStormSettings,
    WorkerSettings,
)

__all__ = [
    "ANY_DESTINATION",
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "MIN_SIGNING_KEY_CHARS",
    "REVOKE_SHARE",
    "CallbackSettings",
    "DeadLetterSettings",
    "FoneStormSettings",
    "HttpSettings",
    "KafkaSettings",
    "LogSettings",
    "SchemaSettings",
    "Settings",
    "SettingsError",
    "TopicSettings",
    "TracingSettings",
    "WorkerSettings",
    "env_name",
    "load_settings",
    "receiver_auth_problem",
    "settings_table",
]
