"""Settings of the Kafka connection, the topics and the schema registry."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator


class KafkaSettings(BaseModel):
    """Connection to the Kafka cluster and producer behaviour."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    client_id: str = Field("fonestorm-bridge", description="Client id sent to the brokers.")
    produce_timeout: float = Field(
        13.0,
        gt=0,
        description="Seconds to wait for a broker acknowledgement before answering 503. Longer "
        "than a leader election after a broker dies or freezes (Kafka fences it after "
        "`broker.session.timeout.ms`, 9 s by default, then elects new leaders: 8-12 s measured, "
        "the longer when it was the active controller too), so a callback waits through a "
        "failover instead of getting 503; shorter than a webhook sender waits (FoneStorm gives "
        "up after about 15 s). See *Kafka failover* in the README.",
    )
    linger_ms: int = Field(
        0, ge=0, description="Producer linger: how long to wait to fill a batch (ms)."
    )
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="Producer compression codec."
    )
    request_timeout_ms: int = Field(
        30000,
        gt=0,
        description="Kafka client request timeout (ms), except for the producer of callbacks, "
        "results and ledger entries (`BRIDGE_KAFKA__PRODUCER_REQUEST_TIMEOUT_MS`).",
    )
    producer_request_timeout_ms: int = Field(
        1500,
        gt=0,
        description="Request timeout of the producer (ms): how long a produce request may go "
        "unanswered (a frozen or cut-off broker) before the producer sends it again, to the "
        "partition's new leader once Kafka has elected one, and how long a leader waits for its "
        "in-sync replicas. Well below `BRIDGE_KAFKA__PRODUCE_TIMEOUT`, so a broker that stops "
        "answering costs a callback a resend, not a 503; resending is safe (idempotent producer). "
        "Raise it for a cluster whose acks=all writes take over a second when healthy.",
    )
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
