"""What an instance is: its listeners and ports, and the server.properties / log4j2
configuration rendered from them."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

from tools.local_kafka.common import HOST, NODE_ID, PROG
from tools.local_kafka.paths import InstancePaths

# --------------------------------------------------------------------------------------------
# Listeners. Kept as data so another listener (e.g. SASL_PLAINTEXT for auth tests) is one more
# entry here plus its JAAS/sasl.*/ssl.* properties in server_properties().
# --------------------------------------------------------------------------------------------


SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
SSL_CLIENT_AUTH = ("none", "required")  # values of the SSL listener's ssl.client.auth


@dataclass(frozen=True)
class Listener:
    name: str  # listener name, e.g. PLAINTEXT, CONTROLLER
    protocol: str  # security protocol, e.g. PLAINTEXT, SASL_PLAINTEXT
    port: int
    controller: bool = False  # controller listeners are not advertised to clients

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.name}://{self.address}"


@dataclass(frozen=True)
class Node:
    """One KRaft node (broker and controller) of an instance."""

    node_id: int
    port: int
    controller_port: int

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def controller_address(self) -> str:
        return f"{HOST}:{self.controller_port}"


@dataclass(frozen=True)
class InstanceConfig:
    name: str
    port: int
    controller_port: int
    sasl_port: int | None = None  # an extra SASL_PLAINTEXT listener with SCRAM users
    ssl_port: int | None = None  # an extra SSL listener with a certificate from the local CA
    ssl_client_auth: str = "none"  # the SSL listener's ssl.client.auth (one of SSL_CLIENT_AUTH)
    # Nodes (each broker and controller): node i listens on port+i, its controller on
    # controller_port+i. Only a single node has the extra SASL and SSL listeners.
    brokers: int = 1
    # server.properties entries given with `start --override KEY=VALUE`, written after (and so
    # in place of) the defaults: e.g. a shorter broker.session.timeout.ms for a failover run.
    overrides: tuple[tuple[str, str], ...] = ()

    @property
    def nodes(self) -> list[Node]:
        if self.brokers == 1:
            return [Node(NODE_ID, self.port, self.controller_port)]
        return [
            Node(index + 1, self.port + index, self.controller_port + index)
            for index in range(self.brokers)
        ]

    @property
    def replication(self) -> int:
        """Replication factor of internal and default topics: every node, up to three."""
        return min(3, self.brokers)

    @property
    def min_insync(self) -> int:
        """One replica may be down (a rolling restart) while acks=all writes go on."""
        return max(1, self.replication - 1)

    def node_listeners(self, node: Node) -> list[Listener]:
        """The listeners of ``node``."""
        if self.brokers == 1:
            return self.listeners
        return [
            Listener("PLAINTEXT", "PLAINTEXT", node.port),
            Listener("CONTROLLER", "PLAINTEXT", node.controller_port, controller=True),
        ]

    @property
    def listeners(self) -> list[Listener]:
        listeners = [
            Listener("PLAINTEXT", "PLAINTEXT", self.port),
            Listener("CONTROLLER", "PLAINTEXT", self.controller_port, controller=True),
        ]
        if self.sasl_port is not None:
            listeners.append(Listener("SASL_PLAINTEXT", "SASL_PLAINTEXT", self.sasl_port))
        if self.ssl_port is not None:
            listeners.append(Listener("SSL", "SSL", self.ssl_port))
        return listeners

    @property
    def ports(self) -> list[int]:
        if self.brokers > 1:
            return [port for node in self.nodes for port in (node.port, node.controller_port)]
        return [listener.port for listener in self.listeners]

    @property
    def client_listener(self) -> Listener:
        return self.listeners[0]

    @property
    def bootstrap(self) -> str:
        if self.brokers > 1:
            return ",".join(node.address for node in self.nodes)
        return self.client_listener.address

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "port": self.port,
            "controller_port": self.controller_port,
            "sasl_port": self.sasl_port,
            "ssl_port": self.ssl_port,
            "ssl_client_auth": self.ssl_client_auth,
            "brokers": self.brokers,
            "overrides": [f"{key}={value}" for key, value in self.overrides],
        }


# --------------------------------------------------------------------------------------------
# Configuration files
# --------------------------------------------------------------------------------------------


def server_properties(
    config: InstanceConfig, paths: InstancePaths, node: Node | None = None
) -> str:
    """server.properties of ``node`` (default: the first), its data in ``paths``."""
    node = node or config.nodes[0]
    listeners = config.node_listeners(node)
    controllers = [listener for listener in listeners if listener.controller]
    advertised = [listener for listener in listeners if not listener.controller]
    replication = config.replication
    props: dict[str, object] = {
        # KRaft combined mode (every node is a broker and a controller), static quorum.
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": ",".join(
            f"{voter.node_id}@{voter.controller_address}" for voter in config.nodes
        ),
        "controller.listener.names": ",".join(listener.name for listener in controllers),
        "listeners": ",".join(listener.url for listener in listeners),
        "advertised.listeners": ",".join(listener.url for listener in advertised),
        "inter.broker.listener.name": config.client_listener.name,
        "listener.security.protocol.map": ",".join(
            f"{listener.name}:{listener.protocol}" for listener in listeners
        ),
        "log.dirs": paths.data,
        # Every topic, internal ones included, on every node up to three; one may be down.
        "num.partitions": 1,
        "default.replication.factor": replication,
        "min.insync.replicas": config.min_insync,
        "offsets.topic.replication.factor": replication,
        # One group-coordinator partition per node: on a cluster the groups spread over the
        # nodes, so a test can pick one whose coordinator is not the active controller.
        "offsets.topic.num.partitions": config.brokers,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": config.min_insync,
        "transaction.state.log.num.partitions": 1,
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": config.min_insync,
        "share.coordinator.state.topic.num.partitions": 1,
        # Fast and small: consumers join immediately, few threads, small cleaner buffer.
        "group.initial.rebalance.delay.ms": 0,
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
        "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
        "log.cleaner.threads": 1,
        "auto.leader.rebalance.enable": "false",
    }
    if config.sasl_port is not None:
        # Brokers talk PLAINTEXT among themselves; clients may log in with SCRAM users that
        # `start --scram-user` added when the storage was formatted.
        props["sasl.enabled.mechanisms"] = ",".join(SCRAM_MECHANISMS)
        for mechanism in SCRAM_MECHANISMS:
            props[f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    if config.ssl_port is not None:
        # PEM stores (KIP-651): the key store holds the broker's unencrypted PKCS#8 key and its
        # chain; the trust store (for client certificates) is the local CA.
        prefix = "listener.name.ssl."
        props[f"{prefix}ssl.keystore.type"] = "PEM"
        props[f"{prefix}ssl.keystore.location"] = paths.broker_keystore
        props[f"{prefix}ssl.truststore.type"] = "PEM"
        props[f"{prefix}ssl.truststore.location"] = paths.ca_cert
        props[f"{prefix}ssl.client.auth"] = config.ssl_client_auth
    props.update(config.overrides)
    lines = [
        f"# Written by scripts/{PROG} for instance '{config.name}'; rewritten on every start.",
        *(f"{key}={value}" for key, value in props.items()),
    ]
    return "\n".join(lines) + "\n"


def log4j_properties(paths: InstancePaths) -> str:
    """INFO to a rolling logs/server.log; nothing on the console; chatty loggers at WARN."""
    quiet = [
        "org.apache.kafka.common.config.AbstractConfig",  # full config dumps
        "org.apache.kafka.common.utils.AppInfoParser",
        "kafka.request.logger",
        "state.change.logger",
        "org.apache.kafka.clients",
    ]
    lines = [
        "status = warn",
        "name = local-kafka",
        # Kafka logs its own shutdown from a JVM shutdown hook: keep log4j alive until the end.
        "shutdownHook = disable",
        "appender.file.type = RollingFile",
        "appender.file.name = FILE",
        f"appender.file.fileName = {paths.server_log}",
        f"appender.file.filePattern = {paths.logs}/server.log.%i",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "appender.file.policies.type = Policies",
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
        "appender.file.policies.size.size = 20MB",
        "appender.file.strategy.type = DefaultRolloverStrategy",
        "appender.file.strategy.max = 3",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = FILE",
    ]
    for index, logger in enumerate(quiet):
        lines += [f"logger.quiet{index}.name = {logger}", f"logger.quiet{index}.level = WARN"]
    return "\n".join(lines) + "\n"


def new_cluster_id() -> str:
    """A Kafka Uuid string (unpadded url-safe base64 of 16 bytes), as kafka-storage random-uuid."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka avoids ids that look like CLI options
            return cluster_id
