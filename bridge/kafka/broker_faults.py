"""Which aiokafka log records are a broker being away, and the state of each broker.

Pure: :func:`classify` reads one of aiokafka's (0.14) log records and says whether it is a
routine connection failure of one broker (:class:`Fault`), a consequence of one already
reported (:class:`Echo`), a broker's answer that a leader moved, which the client retries
(:class:`Moved`: an INFO line, not an ERROR), or anything else (``None``: left alone).
:class:`BrokerStates` turns faults and successful probes into the two transitions worth a log
line: a broker going away (:class:`Outage`) and coming back (:class:`Recovery`). The shell is
:mod:`bridge.kafka.broker_watch`.

Only transport failures are routine: a refused or reset connection, a timeout, a name that
does not resolve (a restarting pod's DNS record is gone), a broker missing from the metadata.
TLS and SASL failures, and every other error a broker answers with, are real and stay as they are.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from logging import LogRecord

from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    KafkaConnectionError,
    LeaderNotAvailableError,
    NodeNotReadyError,
    NotCoordinatorForGroupError,
    NotLeaderForPartitionError,
    RequestTimedOutError,
    StaleMetadata,
)

#: aiokafka's client module logs on the package logger itself.
CLIENT = "aiokafka"
FETCHER = "aiokafka.consumer.fetcher"
COORDINATOR = "aiokafka.consumer.group_coordinator"
SENDER = "aiokafka.producer.sender"
#: Loggers whose records :func:`classify` knows (a filter sees only its own logger's records).
LOGGERS = (CLIENT, FETCHER, COORDINATOR, SENDER)

_TRANSPORT_ERRORS = (
    KafkaConnectionError, NodeNotReadyError, RequestTimedOutError, StaleMetadata, TimeoutError,
    OSError,
)  # fmt: skip


# A broker's answer that leadership (of a partition or a group) has moved: the client looks the
# new leader up and retries, as it does through every restart and leader election.
_MOVED_ERRORS = (
    NotLeaderForPartitionError, LeaderNotAvailableError, NotCoordinatorForGroupError,
    GroupCoordinatorNotAvailableError, GroupLoadInProgressError,
)  # fmt: skip


def routine(error: object) -> bool:
    """Whether ``error`` is a broker being unreachable (and not a configuration problem)."""
    return isinstance(error, _TRANSPORT_ERRORS) and not isinstance(error, ssl.SSLError)


def moved(error: object) -> bool:
    """Whether ``error`` (an instance or, as aiokafka's sender logs it, a class) says a
    leader moved."""
    if isinstance(error, type):
        return issubclass(error, _MOVED_ERRORS)
    return isinstance(error, _MOVED_ERRORS)


@dataclass(frozen=True)
class Fault:
    """A routine connection failure to broker ``node_id``."""

    node_id: str
    error: str


@dataclass(frozen=True)
class Moved:
    """A retried answer that a leader moved: worth an INFO line, not a WARNING or an ERROR."""


@dataclass(frozen=True)
class Echo:
    """A record that only repeats a failure reported by other records.

    About the brokers ``nodes``, or the broker at ``address``, or (neither) about whichever
    broker is away.
    """

    nodes: tuple[str, ...] = ()
    address: str | None = None


# (logger, message template) -> (index of the node id in the args, index of the error).
_FAULTS: dict[tuple[str, str], tuple[int, int]] = {
    (CLIENT, "Unable connect to node with id %s: %s"): (0, 1),
    (CLIENT, "Unable to request metadata from node with id %s: %r"): (0, 1),
    (FETCHER, "Failed fetch messages from %s: %s"): (0, 1),
    (FETCHER, "Failed fetch offsets from %s: %s"): (0, 1),
    (COORDINATOR, "Error sending %s to node %s [%s] -- marking coordinator dead"): (1, 2),
    (SENDER, "Cannot send %r to %s: %r"): (1, 2),
}
# Echoes of a bootstrap address: (host index, port index, error index).
_BOOTSTRAP: dict[tuple[str, str], tuple[int, int, int]] = {
    (CLIENT, 'Unable connect to "%s:%s": %s'): (0, 1, 2),
    (CLIENT, 'Unable to request metadata from "%s:%s": %s'): (0, 1, 2),
}
# Echoes of whichever broker is away when their error (this index) is routine; Moved when it
# says a leader moved.
_ANY: dict[tuple[str, str], int] = {
    (COORDINATOR, "Group Coordinator Request failed: %s"): 0,
    (COORDINATOR, "Heartbeat send request failed: %s. Will retry."): 0,
    (COORDINATOR, "OffsetCommit failed before join, ignoring: %s"): 0,
    (SENDER, "Got error produce response: %s"): 0,
    (SENDER, "Could not send %r: %r"): 1,
    (SENDER, "Got error produce response on topic-partition %s, retrying. Error: %s"): 1,
}
_NODES_LIST = (CLIENT, "Unable to update metadata from %s")
# A group coordinator moving (a restart, or a broker resigning it): once per move.
_COORDINATOR_MOVED = {
    (COORDINATOR, "Marking the coordinator dead (node %s)for group %s."),
    (COORDINATOR, "Heartbeat failed for group %s: coordinator (node %s) is either not started "
     "or not valid"),
}  # fmt: skip

#: Every (logger, template) :func:`classify` recognises (a test checks aiokafka still has them).
TEMPLATES = frozenset([*_FAULTS, *_BOOTSTRAP, *_ANY, _NODES_LIST, *_COORDINATOR_MOVED])


def classify(record: LogRecord) -> Fault | Echo | Moved | None:
    """What ``record`` says about the brokers; ``None`` for anything to log as it is."""
    key = (record.name, record.msg)
    args = record.args if isinstance(record.args, tuple) else ()
    verdict: Fault | Echo | Moved | None = None
    try:
        if key in _FAULTS:
            node, error = (args[i] for i in _FAULTS[key])
            if routine(error):
                verdict = Echo() if node == "bootstrap" else Fault(str(node), _describe(error))
            elif moved(error):
                verdict = Moved()
        elif key in _BOOTSTRAP:
            host, port, error = (args[i] for i in _BOOTSTRAP[key])
            verdict = Echo(address=f"{host}:{port}") if routine(error) else None
        elif key in _ANY:
            error = args[_ANY[key]]
            verdict = Echo() if routine(error) else Moved() if moved(error) else None
        elif key == _NODES_LIST and isinstance(args[0], list | tuple):
            verdict = Echo(nodes=tuple(str(n) for n in args[0] if n != "bootstrap"))
        elif key in _COORDINATOR_MOVED:
            verdict = Moved()
    except IndexError:
        return None  # not the shape this module knows: log it as it is
    return verdict


def _describe(error: object) -> str:
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text}" if text and name not in text else (text or name)


@dataclass
class Outage:
    """A broker found unreachable: since when, the first error, how many records it stood for."""

    node_id: str
    address: str | None
    since: float
    error: str
    records: int = 1


@dataclass(frozen=True)
class Recovery:
    """A broker reachable again after ``outage``, ``away`` seconds after its first failure."""

    outage: Outage
    away: float


@dataclass
class BrokerStates:
    """Which brokers are away; the transitions (away, back) to report, each once."""

    _away: dict[str, Outage] = field(default_factory=dict)

    def fault(self, fault: Fault, now: float, address: str | None) -> Outage | None:
        """Count a routine failure of a broker; the new :class:`Outage` if it was reachable."""
        outage = self._away.get(fault.node_id)
        if outage is not None:
            outage.records += 1
            if outage.address is None:
                outage.address = address
            return None
        outage = self._away[fault.node_id] = Outage(fault.node_id, address, now, fault.error)
        return outage

    def covers(self, echo: Echo) -> bool:
        """Whether ``echo`` only repeats failures of brokers known to be away (then counted)."""
        if echo.address is not None:
            found = [o for o in self._away.values() if o.address == echo.address]
        elif echo.nodes:
            found = [self._away[n] for n in echo.nodes if n in self._away]
            if len(found) < len(set(echo.nodes)):
                return False
        else:
            found = list(self._away.values())[:1]
        for outage in found:
            outage.records += 1
        return bool(found)

    def reached(self, node_id: str, now: float) -> Recovery | None:
        """A successful contact with ``node_id``; the :class:`Recovery` if it was away."""
        outage = self._away.pop(node_id, None)
        return None if outage is None else Recovery(outage, now - outage.since)

    def away(self) -> list[str]:
        """Node ids of the brokers away now."""
        return list(self._away)

    def is_away(self, node_id: str) -> bool:
        """Whether ``node_id`` is away now."""
        return node_id in self._away
