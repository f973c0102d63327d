"""Settings of the HTTP server and of the callbacks it receives."""

from __future__ import annotations

import phonenumbers
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from bridge.envlists import NetworkList


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
        25.0,
        gt=0,
        description="Seconds in-flight requests get to finish after SIGTERM (a worker's "
        "create-call requests get 80% of `BRIDGE_WORKER__REBALANCE_TIMEOUT` if that is longer).",
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
