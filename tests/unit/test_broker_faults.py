"""aiokafka's log records about brokers: which are a broker being away, which only repeat it,
which say a leader moved; and the transitions (away, back) each reported once."""

from __future__ import annotations

import inspect
import logging
import socket
import ssl
from typing import Any

import aiokafka.client
import aiokafka.consumer.fetcher
import aiokafka.consumer.group_coordinator
import aiokafka.producer.sender
import pytest
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    KafkaConnectionError,
    NodeNotReadyError,
    NotEnoughReplicasError,
    NotLeaderForPartitionError,
    RequestTimedOutError,
    SaslAuthenticationFailed,
    StaleMetadata,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from bridge.kafka.broker_faults import (
    CLIENT,
    COORDINATOR,
    FETCHER,
    LOGGERS,
    SENDER,
    TEMPLATES,
    BrokerStates,
    Echo,
    Fault,
    Moved,
    classify,
)

REFUSED = ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 9092)")
CLOSED = KafkaConnectionError("Connection at 10.0.0.5:9092 closed")
NOT_READY = NodeNotReadyError("Attempt to send a request to node which is not ready (node id 2).")
CERT = ssl.SSLCertVerificationError(1, "certificate verify failed")


def _record(name: str, msg: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, "x.py", 1, msg, args, None)


CASES: list[tuple[str, logging.LogRecord, Fault | Echo | Moved | None]] = [
    # A broker that refuses, drops, times out or is not in the metadata: a fault of that node.
    ("connect refused", _record(CLIENT, "Unable connect to node with id %s: %s", 2, REFUSED),
     Fault("2", "ConnectionRefusedError: [Errno 111] Connect call failed ('10.0.0.5', 9092)")),
    ("connect timed out", _record(CLIENT, "Unable connect to node with id %s: %s", 2,
                                  TimeoutError()), Fault("2", "TimeoutError")),
    ("name gone (restarting pod)",
     _record(CLIENT, "Unable connect to node with id %s: %s", 2,
             socket.gaierror(-2, "Name or service not known")),
     Fault("2", "gaierror: [Errno -2] Name or service not known")),
    ("not in metadata", _record(CLIENT, "Unable connect to node with id %s: %s", 2,
                                StaleMetadata("Broker id 2 not in current metadata")),
     Fault("2", "StaleMetadata: Broker id 2 not in current metadata")),
    ("metadata request dropped",
     _record(CLIENT, "Unable to request metadata from node with id %s: %r", 2, CLOSED),
     Fault("2", "KafkaConnectionError: Connection at 10.0.0.5:9092 closed")),
    ("fetch", _record(FETCHER, "Failed fetch messages from %s: %s", 2, NOT_READY),
     Fault("2", str(NOT_READY))),
    ("fetch offsets", _record(FETCHER, "Failed fetch offsets from %s: %s", 2, CLOSED),
     Fault("2", "KafkaConnectionError: Connection at 10.0.0.5:9092 closed")),
    ("coordinator request",
     _record(COORDINATOR, "Error sending %s to node %s [%s] -- marking coordinator dead",
             "HeartbeatRequest", 3, RequestTimedOutError()),
     Fault("3", "[Error 7] RequestTimedOutError")),
    ("sender", _record(SENDER, "Cannot send %r to %s: %r", object, 2, NOT_READY),
     Fault("2", str(NOT_READY))),
    # Consequences: covered by the faults of the brokers they name (or any, or an address).
    ("metadata from nobody", _record(CLIENT, "Unable to update metadata from %s", [1, 2]),
     Echo(nodes=("1", "2"))),
    ("metadata through bootstrap",
     _record(CLIENT, "Unable to update metadata from %s", ["bootstrap", 2]), Echo(nodes=("2",))),
    ("bootstrap connect", _record(CLIENT, 'Unable connect to "%s:%s": %s', "k0", 9092, REFUSED),
     Echo(address="k0:9092")),
    ("bootstrap metadata",
     _record(CLIENT, 'Unable to request metadata from "%s:%s": %s', "k0", 9092, CLOSED),
     Echo(address="k0:9092")),
    ("coordinator lookup", _record(COORDINATOR, "Group Coordinator Request failed: %s",
                                   NOT_READY), Echo()),
    ("heartbeat", _record(COORDINATOR, "Heartbeat send request failed: %s. Will retry.", CLOSED),
     Echo()),
    ("produce", _record(SENDER, "Got error produce response: %s", NOT_READY), Echo()),
    ("send", _record(SENDER, "Could not send %r: %r", object, CLOSED), Echo()),
    ("node 'bootstrap'", _record(CLIENT, "Unable connect to node with id %s: %s", "bootstrap",
                                 StaleMetadata()), Echo()),
    # A broker answering that a leader moved: retried, so INFO.
    ("not leader (produce)",
     _record(SENDER, "Got error produce response on topic-partition %s, retrying. Error: %s",
             "tp", NotLeaderForPartitionError), Moved()),
    ("not leader (offsets)", _record(FETCHER, "Failed fetch offsets from %s: %s", 2,
                                     NotLeaderForPartitionError()), Moved()),
    ("coordinator loading", _record(COORDINATOR, "Group Coordinator Request failed: %s",
                                    GroupCoordinatorNotAvailableError()), Moved()),
    ("coordinator dead",
     _record(COORDINATOR, "Marking the coordinator dead (node %s)for group %s.", 1, "g"),
     Moved()),
    # Real errors stay as they are.
    ("TLS certificate", _record(CLIENT, "Unable connect to node with id %s: %s", 2, CERT), None),
    ("SASL", _record(CLIENT, "Unable connect to node with id %s: %s", 2,
                     SaslAuthenticationFailed()), None),
    ("bootstrap TLS", _record(CLIENT, 'Unable connect to "%s:%s": %s', "k0", 9092, CERT), None),
    ("not authorised", _record(COORDINATOR, "Group Coordinator Request failed: %s",
                               TopicAuthorizationFailedError()), None),
    ("too few replicas",
     _record(SENDER, "Got error produce response on topic-partition %s, retrying. Error: %s",
             "tp", NotEnoughReplicasError), None),
    ("unknown topic", _record(FETCHER, "Failed fetch offsets from %s: %s", 2,
                              UnknownTopicOrPartitionError()), None),
    ("another message", _record(CLIENT, "Topic %s not found in cluster metadata", "t"), None),
    ("another logger", _record("aiokafka.conn", "Unable connect to node with id %s: %s", 2,
                               REFUSED), None),
    ("unexpected args", _record(FETCHER, "Failed fetch messages from %s: %s", 2), None),
]  # fmt: skip


@pytest.mark.parametrize(("record", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify(record: logging.LogRecord, expected: Fault | Echo | Moved | None) -> None:
    assert classify(record) == expected


def test_every_template_is_still_logged_by_aiokafka() -> None:
    # An aiokafka that rewords a message would let its records through unfolded: fail here first.
    modules = {
        CLIENT: aiokafka.client,
        FETCHER: aiokafka.consumer.fetcher,
        COORDINATOR: aiokafka.consumer.group_coordinator,
        SENDER: aiokafka.producer.sender,
    }
    assert set(modules) == set(LOGGERS)
    for name, module in modules.items():
        assert logging.getLogger(name) is module.log, name
    normalised = {name: " ".join(inspect.getsource(m).split()) for name, m in modules.items()}
    for name, template in TEMPLATES:
        # Long messages are split over adjacent string literals in the source.
        pieces = [" ".join(p.split()) for p in template.split("%s")]
        assert all(p in normalised[name].replace('" "', "") for p in pieces), (name, template)


def _fault(node: str) -> Fault:
    return Fault(node, "refused")


def test_a_broker_goes_away_once_and_comes_back_once() -> None:
    states = BrokerStates()
    outage = states.fault(_fault("1"), 10.0, "k1:9092")
    assert outage is not None
    assert (outage.node_id, outage.address, outage.since) == (
        "1",
        "k1:9092",
        10.0,
    )
    assert [states.fault(_fault("1"), t, "k1:9092") for t in (10.1, 10.2, 12.0)] == [None] * 3
    assert states.away() == ["1"]
    recovery = states.reached("1", 25.5)
    assert recovery is not None
    assert (recovery.away, recovery.outage.records) == (15.5, 4)
    assert states.reached("1", 26.0) is None  # reported once
    assert states.away() == []
    assert states.fault(_fault("1"), 40.0, None) is not None  # away again: a new outage


def test_brokers_are_away_each_on_their_own() -> None:
    states = BrokerStates()
    assert states.fault(_fault("1"), 0.0, None) is not None
    assert states.fault(_fault("2"), 1.0, None) is not None
    assert states.reached("3", 2.0) is None  # never away
    recovery = states.reached("2", 5.0)
    assert recovery is not None
    assert recovery.away == 4.0
    assert states.away() == ["1"]


def test_an_address_learnt_later_is_kept() -> None:
    states = BrokerStates()
    states.fault(_fault("1"), 0.0, None)
    states.fault(_fault("1"), 1.0, "k1:9092")
    recovery = states.reached("1", 2.0)
    assert recovery is not None
    assert recovery.outage.address == "k1:9092"


ECHOES: list[tuple[str, Echo, bool]] = [
    ("the nodes named are away", Echo(nodes=("1",)), True),
    ("one node named is not away", Echo(nodes=("1", "3")), False),
    ("no broker named, one away", Echo(), True),
    ("the address of one away", Echo(address="k1:9092"), True),
    ("an address of none away", Echo(address="k3:9092"), False),
]


@pytest.mark.parametrize(("echo", "covered"), [c[1:] for c in ECHOES], ids=[c[0] for c in ECHOES])
def test_an_echo_is_covered_only_by_brokers_away(echo: Echo, covered: bool) -> None:
    states = BrokerStates()
    assert not states.covers(echo)  # nothing away: every record passes
    states.fault(_fault("1"), 0.0, "k1:9092")
    assert states.covers(echo) is covered
