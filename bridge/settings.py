"""Configuration, read from ``BRIDGE_*`` environment variables (nested with ``__``).

Example: ``BRIDGE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092``. Every field is documented in the
README's settings table; keep the two in step (a unit test checks it).
"""

from __future__ import annotations

import re
from typing import Literal

import phonenumbers
import pydantic_settings
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridge.envlists import NetworkList, StringList

ENV_PREFIX = "BRIDGE_"
ENV_NESTED_DELIMITER = "__"
#: The ``BRIDGE_WORKER__ALLOWED_DESTINATIONS`` entry that allows every country.
ANY_DESTINATION = "*"
#: Share of the worker's rebalance timeout that in-flight requests get to finish on revoke.
REVOKE_SHARE = 0.8


class KafkaSettings(BaseModel):
    """Connection to the Kafka cluster and producer behaviour."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    client_id: str = Field("fonestorm-bridge", description="Client id sent to the brokers.")
    produce_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for a broker acknowledgement before answering 503."
    )
    linger_ms: int = Field(
        0, ge=0, description="Producer linger: how long to wait to fill a batch (ms)."
    )
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="Producer compression codec."
    )
    request_timeout_ms: int = Field(30000, gt=0, description="Kafka client request timeout (ms).")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How to talk to the brokers."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (with SASL_* protocols)."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    ssl_cafile: str | None = Field(
        None, description="CA bundle to verify brokers (PEM file); system CAs when unset."
    )
    ssl_certfile: str | None = Field(None, description="Client certificate (PEM) for mTLS.")
    ssl_keyfile: str | None = Field(None, description="Client private key (PEM) for mTLS.")
    create_topics: bool = Field(
        False, description="Create missing topics at start-up (else a missing topic is an error)."
    )
    topic_partitions: int = Field(6, gt=0, description="Partitions of topics the bridge creates.")
    topic_replication_factor: int | None = Field(
        None,
        gt=0,
        description="Replication factor of topics the bridge creates (at start-up or with "
        "`fonestorm-bridge topics create`) and `topics check` expects; unset: as many as the "
        "cluster has brokers, up to 3.",
    )
    topic_min_insync_replicas: int | None = Field(
        None,
        gt=0,
        description="`min.insync.replicas` of topics the bridge creates and `topics check` "
        "expects; unset: 2 where topics have 3 replicas or more, else the broker's default.",
    )


class TopicSettings(BaseModel):
    """Names of the topics the bridge reads and writes."""

    call_events: str = Field("fonestorm.call-events.v1", description="CallEvent topic.")
    dead_letters: str = Field(
        "fonestorm.dead-letters.v1", description="Rejected callbacks and commands."
    )
    dead_letter_replays: str = Field(
        "fonestorm.dead-letter-replays.v1",
        description="Compacted record of `dead-letters replay`, keyed by dead_letter_id: what "
        "each replay did, so no dead letter is replayed twice.",
    )
    dead_letter_audit: str = Field(
        "fonestorm.dead-letter-audit.v1",
        description="Audit trail of `dead-letters replay`: one record per dead letter a replay "
        "acted on (who, when, what, where to), never compacted.",
    )
    place_call: str = Field("fonestorm.place-call.v1", description="PlaceCallCommand topic.")
    place_call_results: str = Field(
        "fonestorm.place-call-results.v1", description="PlaceCallResult topic."
    )
    command_ledger: str = Field(
        "fonestorm.place-call-ledger.v1",
        description="Compacted ledger of command states (exactly-once bookkeeping).",
    )


class HttpSettings(BaseModel):
    """The callback HTTP server."""

    host: str = Field("0.0.0.0", description="Address to listen on.")  # noqa: S104
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on.")
    admin_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of `/healthz`, `/readyz` and `/metrics`; when set, they are served only "
        "there and the callback port answers only callbacks. Unset (or empty, which overrides the "
        "image's 9090): all on the callback port.",
    )
    trusted_proxies: NetworkList = Field(
        default_factory=list,
        description="Proxies (CIDRs, comma-separated or a JSON list) whose `X-Forwarded-For` is "
        "believed when checking `BRIDGE_CALLBACKS__ALLOWED_NETWORKS`; from anyone else the "
        "header is ignored.",
    )
    max_body_bytes: int = Field(
        64 * 1024, gt=0, description="Largest callback body accepted (bytes); larger gets 413."
    )
    body_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a callback's body may take to arrive; slower gets 408 and is "
        "dead-lettered with what arrived.",
    )
    shutdown_timeout: float = Field(
        25.0, gt=0, description="Seconds in-flight requests get to finish after SIGTERM."
    )
    keepalive_timeout: float = Field(
        75.0, gt=0, description="Idle keep-alive connection timeout (s)."
    )
    header_timeout: float = Field(
        5.0,
        gt=0,
        description="Seconds a request's line and headers may take to arrive, from the "
        "connection's accept for its first request and from the first byte of each later one; "
        "slower, the connection is closed without an answer (against slowloris: headers sent a "
        "byte at a time would otherwise hold a connection for the keep-alive timeout).",
    )

    @field_validator("admin_port", mode="before")
    @classmethod
    def _empty_admin_port_is_unset(cls, value: object) -> object:
        # The image sets BRIDGE_HTTP__ADMIN_PORT; an environment can only override a variable,
        # not remove it, so an empty value is how the single-port layout is chosen.
        return None if value == "" else value

    @model_validator(mode="after")
    def _distinct_ports(self) -> HttpSettings:
        if self.admin_port is not None and self.admin_port == self.port != 0:
            raise ValueError("BRIDGE_HTTP__ADMIN_PORT must differ from BRIDGE_HTTP__PORT")
        return self


class CallbackSettings(BaseModel):
    """How callbacks are authenticated and mapped to events."""

    username: str | None = Field(
        None,
        description="Basic-auth user FoneStorm must send. Required, with a non-empty password, "
        "unless `BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED=true`: the receiver refuses to start "
        "without them.",
    )
    password: SecretStr | None = Field(
        None, description="Basic-auth password (secret); non-empty, set with the user."
    )
    allowed_networks: NetworkList = Field(
        default_factory=list,
        description="Sources (CIDRs, comma-separated or a JSON list, e.g. "
        '`203.0.113.0/24,198.51.100.0/24` or `["203.0.113.0/24"]`) callbacks are accepted '
        "from; others get 403 and nothing is produced. Behind a proxy, set "
        "`BRIDGE_HTTP__TRUSTED_PROXIES` too. Empty: any source.",
    )
    allow_unauthenticated: bool = Field(
        False,
        description="Run the receiver without basic auth: anyone who reaches it can put events on "
        "the topic. Only behind a boundary that authenticates FoneStorm itself; logged as a "
        "WARNING at start and shown by the `bridge_callbacks_unauthenticated` metric.",
    )
    default_region: str = Field(
        "US", min_length=2, max_length=2, description="Region for numbers without country code."
    )
    correlation_wait: float = Field(
        1.0,
        ge=0,
        description="Longest wait (s) of an outbound callback whose numbers have a placement in "
        "flight (it waits for the ledger to name the call, so its event carries command_id and "
        "correlation_id); other callbacks never wait. 0 disables correlation.",
    )
    correlation_hold: float = Field(
        0.025,
        ge=0,
        le=1,
        description="Workers wait this long (s) between their `placing` ledger entry being "
        "acknowledged and sending the create-call request. A receiver that has read the ledger "
        "as of at most this long before an outbound callback came then knows every placement "
        "that could have made it, and answers at once; otherwise the callback waits for one "
        "ListOffsets round trip. Set the same on workers and receivers (a receiver with a "
        "longer hold may leave a callback untagged, counted by "
        "`bridge_callback_tags_missed_total`). 0: every such callback waits for the round trip.",
    )
    correlation_lookback: float = Field(
        86400.0, ge=0, description="At start, read the command ledger this far back (s)."
    )
    correlation_cache_size: int = Field(
        200_000, gt=0, description="Placed calls remembered for correlation."
    )
    correlation_doubt_window: float = Field(
        3600.0,
        ge=0,
        description="How long (s) after an `in_doubt` command's placement an outbound callback "
        "between its numbers, of a call no command names, counts as evidence of its call: the "
        "events carry its command_id and correlation_id, and a `call.placed` with "
        "`reconciled: true` follows. Long enough for a call's END as well as its BEGIN. No "
        "guess when two such commands, or one and a placement in flight, share the numbers "
        '(`bridge_callback_doubts_total{verdict="ambiguous"}`). 0: never.',
    )
    source: str = Field(
        "/fonestorm-bridge/callbacks",
        description="CloudEvents `source` attribute of the events the receiver produces.",
    )

    @model_validator(mode="after")
    def _credentials_come_in_pairs(self) -> CallbackSettings:
        # A user with an empty password, or a password without a user, would leave the
        # receiver open while the operator believes it protected: refuse both, naming them.
        user = bool(self.username)
        password = bool(self.password and self.password.get_secret_value())
        if user and not password:
            raise ValueError(
                "BRIDGE_CALLBACKS__USERNAME is set without a non-empty BRIDGE_CALLBACKS__PASSWORD"
            )
        if password and not user:
            raise ValueError("BRIDGE_CALLBACKS__PASSWORD is set without BRIDGE_CALLBACKS__USERNAME")
        return self

    @property
    def authenticated(self) -> bool:
        """Basic-auth credentials are configured."""
        return bool(self.username)

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}")
        return value


class FoneStormSettings(BaseModel):
    """The FoneStorm REST API."""

    base_url: str = Field("https://api.fonestorm.com/v2", description="API base URL.")
    token: SecretStr | None = Field(None, description="API token sent as the `token` header.")
    connect_timeout: float = Field(5.0, gt=0, description="TCP/TLS connect timeout (s).")
    read_timeout: float = Field(15.0, gt=0, description="Timeout for a whole API request (s).")
    fonenumbers: StringList = Field(
        default_factory=list,
        description="Our FoneNumbers (comma-separated or a JSON list) to register callbacks "
        "for. When set, the worker places calls only from them, and to their countries and "
        "`BRIDGE_WORKER__ALLOWED_DESTINATIONS`.",
    )
    public_url: str | None = Field(
        None, description="Public URL of the callback endpoint, used when registering callbacks."
    )
    callback_method: Literal["GET", "POST", "JSON"] = Field(
        "JSON", description="Callback delivery method to register."
    )
    register_on_start: bool = Field(
        False,
        description="Register send/receive-notify callbacks when the command worker (`worker` "
        "or `serve`) starts; the `receiver` alone never registers, so it needs no token.",
    )


class WorkerSettings(BaseModel):
    """The place-call command worker."""

    group_id: str = Field("fonestorm-bridge-worker", description="Kafka consumer group.")
    max_in_flight: int = Field(
        64,
        gt=0,
        description="Create-call requests out at once. The worker holds four times as many "
        "commands (writing the ledger and results, in the correlation hold, backing off), so "
        "Kafka round trips do not leave requests idle; at most twice as many have `placing` "
        "written and no answer (each is `in_doubt` if the worker dies).",
    )
    rate_limit: float = Field(20.0, gt=0, description="Create-call requests per second at most.")
    max_attempts: int = Field(6, gt=0, description="Attempts per command before it fails.")
    max_retry_seconds: float = Field(
        120.0, gt=0, description="Give up retrying a command after this long (s)."
    )
    backoff_initial: float = Field(0.5, gt=0, description="First retry delay (s).")
    backoff_max: float = Field(30.0, gt=0, description="Largest retry delay (s).")
    ledger_retention: float = Field(
        7 * 86400.0,
        gt=0,
        description="Seconds a command_id is remembered: a copy within this window gets "
        "`duplicate`, after it the id is new again. A command written more than 90% of it ago "
        "that the ledger does not know is `expired` (`too_old`), not placed: the last tenth is "
        "a margin for clock skew between producers, brokers and workers. Bounds the worker's "
        "memory and start-up; also the `retention.ms` of a ledger topic the bridge creates.",
    )
    retry_ambiguous: bool = Field(
        False,
        description="Retry a create-call whose outcome is unknown (timeout or connection lost "
        "after sending, 5xx): MAY RING TWICE, for FoneStorm may have created the call. Off, "
        "such a command ends `in_doubt` and is not retried. A 2xx whose body cannot be read is "
        "never retried.",
    )
    auth_retry_interval: float = Field(
        30.0,
        gt=0,
        description="Seconds between create-call attempts while FoneStorm refuses the token "
        "(401): consumption is paused meanwhile and one command at a time probes.",
    )
    session_timeout: float = Field(
        10.0, gt=0, description="Kafka consumer group session timeout (s) of the worker."
    )
    rebalance_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds the group waits for the worker to give up partitions in a "
        "rebalance. Create-call requests already sent get 80% of it to finish and record their "
        "answer, so it must exceed `BRIDGE_FONESTORM__READ_TIMEOUT` plus two produce timeouts.",
    )
    fence_margin: float = Field(
        2.0,
        ge=0,
        description="Seconds kept in hand when a worker proves it is still a member of its group "
        "before writing `placing` or `pending` or sending a create-call: it acts only within "
        "the lesser of the session and rebalance timeouts, less this, of a heartbeat the group "
        "answered as stable, so a paused worker that resumes cannot act on partitions given to "
        "another. Covers a write's way to the broker; at most half that lesser timeout.",
    )
    max_poll_interval: float = Field(
        300.0,
        gt=0,
        description="Kafka `max.poll.interval.ms` (s): the worker polls every 200 ms, also while "
        "paused, so only a stuck event loop exceeds it.",
    )
    delivery: Literal["at-most-once", "at-least-once"] = Field(
        "at-most-once",
        description="What to do with a command whose outcome is unknown after a crash: "
        "`at-most-once` reports `in_doubt`, `at-least-once` places it again.",
    )
    allowed_destinations: StringList = Field(
        default_factory=list,
        description="Where commands may call besides the countries of "
        "`BRIDGE_FONESTORM__FONENUMBERS` (comma-separated or a JSON list): ISO country codes "
        "(`CA`), E.164 prefixes (`+44`), or `*` for every country (e.g. `CA,+44`). A `to` "
        "elsewhere is `rejected` (`destination_not_allowed`). With no FoneNumber set and this "
        "empty, every command is refused.",
    )
    denied_destinations: StringList = Field(
        default_factory=list,
        description="E.164 prefixes (comma-separated or a JSON list, e.g. `+1900,+1976`) a "
        "command's `to` must not start with, whatever else allows it; a match is `rejected` "
        "(`destination_not_allowed`).",
    )
    deny_premium_rate: bool = Field(
        True,
        description="Refuse a `to` that libphonenumber classifies as premium-rate or "
        "shared-cost (e.g. +1 900, +44 909), and every non-geographic number (+800, +808, "
        "+870, +878, +881, +882, +883, +888, +979: international premium-rate, satellite and "
        "global networks), even with `BRIDGE_WORKER__ALLOWED_DESTINATIONS` `*`: `rejected` "
        "(`destination_not_allowed`), against toll fraud.",
    )

    @field_validator("allowed_destinations")
    @classmethod
    def _countries_or_prefixes(cls, value: list[str]) -> list[str]:
        entries = []
        for entry in value:
            compact = entry.strip()
            if compact == ANY_DESTINATION:
                entries.append(compact)
            elif re.fullmatch(r"[A-Za-z]{2}", compact):
                country = compact.upper()
                if country not in phonenumbers.SUPPORTED_REGIONS:
                    raise ValueError(f"{entry!r} is not a country libphonenumber knows")
                entries.append(country)
            else:
                entries.append(_e164_prefix(entry, 'an ISO country code ("CA"), "*" or '))
        return entries

    @field_validator("denied_destinations")
    @classmethod
    def _e164_prefixes(cls, value: list[str]) -> list[str]:
        return [_e164_prefix(prefix) for prefix in value]

    @model_validator(mode="after")
    def _fence_leaves_room_for_heartbeats(self) -> WorkerSettings:
        # Heartbeats go every third of the session: the rest must outlast one and its answer,
        # or jobs would keep waiting for a proof of membership.
        lease = min(self.session_timeout, self.rebalance_timeout)
        if self.fence_margin > lease / 2:
            raise ValueError(
                f"BRIDGE_WORKER__FENCE_MARGIN={self.fence_margin:g} must be at most half of "
                f"the lesser of BRIDGE_WORKER__SESSION_TIMEOUT and "
                f"BRIDGE_WORKER__REBALANCE_TIMEOUT ({lease / 2:g}s)"
            )
        return self


def _e164_prefix(prefix: str, alternatives: str = "") -> str:
    compact = re.sub(r"[\s().-]", "", prefix)
    if not re.fullmatch(r"\+[0-9]{1,15}", compact):
        raise ValueError(
            f'{prefix!r} is not {alternatives}an E.164 prefix: a `+` and 1 to 15 digits, e.g. "+44"'
        )
    return compact


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


#: Compatibility levels a Confluent-compatible registry knows.
Compatibility = Literal[
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
]


class SchemaSettings(BaseModel):
    """Registry mode: a schema registry that knows the bridge's schemas (README "Schemas")."""

    registry_url: str | None = Field(
        None,
        description="Base URL of a Confluent-compatible schema registry API (Apicurio: "
        "`<url>/apis/ccompat/v7`; Confluent Schema Registry, Karapace: their root). Set: at "
        "start the bridge registers its schemas under `<topic>-<record name>` subjects and "
        "refuses to start when the registry rejects one, every record it writes carries its "
        "schema's ids in `apicurio.value.contentId` / `apicurio.value.globalId` headers, and "
        "the worker also reads commands in the Confluent wire format. Unset: plain mode.",
    )
    registry_username: str | None = Field(
        None, description="Basic-auth user name for the schema registry."
    )
    registry_password: SecretStr | None = Field(
        None, description="Basic-auth password for the schema registry (secret)."
    )
    compatibility: Compatibility = Field(
        "BACKWARD",
        description="Compatibility level set on each subject the bridge registers under that "
        "has none (or `NONE`); a subject with another level keeps it (WARNING at start).",
    )
    request_timeout: float = Field(
        5.0, gt=0, description="Seconds for one request to the schema registry."
    )
    start_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds to keep retrying (with backoff) a registry that does not answer at "
        "start before refusing to start. After start the registry is only asked about the "
        "schema id of a framed command not seen before; an outage never stops the bridge.",
    )

    @model_validator(mode="after")
    def _password_with_user(self) -> SchemaSettings:
        if (self.registry_username is None) != (self.registry_password is None):
            raise ValueError(
                "BRIDGE_SCHEMAS__REGISTRY_USERNAME and BRIDGE_SCHEMAS__REGISTRY_PASSWORD go "
                "together: set both or neither"
            )
        return self


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
