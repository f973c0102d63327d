"""The audit trail of ``dead-letters replay``: who replayed which dead letter, when, to where.

A replay moves records from a topic the internet-facing receiver writes onto the command and
event topics, so each of its acts is kept on ``BRIDGE_TOPICS__DEAD_LETTER_AUDIT`` (never
compacted), written in the same Kafka transaction as the records it produced: there is no
replayed record without its audit record. Refusals are kept too: a dead letter whose
signature does not verify is a sign that someone else writes to the dead-letter topic.

:func:`audit_record` is pure; :func:`operator` reads who runs the process.
"""

from __future__ import annotations

import getpass
import os
import socket
from datetime import datetime
from importlib import metadata

from bridge.dead_letters.decision import Decision
from bridge.dead_letters.model import AuditRecord, Operator, ProducedTo
from bridge.settings import KafkaSettings


def operator(settings: KafkaSettings) -> Operator:
    """Who is running this replay: OS user and host, and the identity it shows Kafka."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a name
        user = f"uid {os.getuid()}"
    sasl = settings.security_protocol.startswith("SASL_")
    return Operator(
        user=user,
        host=socket.gethostname(),
        pid=os.getpid(),
        kafka_user=settings.sasl_username if sasl else None,
        client_id=settings.client_id,
    )


def bridge_version() -> str:
    """The installed bridge's version (``unknown`` when it is not installed)."""
    try:
        return metadata.version("fonestorm-bridge")
    except metadata.PackageNotFoundError:
        return "unknown"


def audit_record(
    decision: Decision,
    *,
    dead_letter: ProducedTo,
    produced_to: ProducedTo | None,
    at: datetime,
    who: Operator,
    allow_unsigned: bool,
    version: str,
) -> AuditRecord:
    """The audit record of one decision a replay wrote (replayed or still invalid)."""
    letter, outgoing = decision.letter, decision.outgoing
    key = outgoing.key if outgoing is not None else None
    return AuditRecord(
        dead_letter_id=letter.dead_letter_id,
        source=letter.source,
        dead_letter=dead_letter,
        dead_lettered_as=letter.reason_code,
        integrity=decision.integrity or "unsigned",
        allow_unsigned=allow_unsigned,
        outcome="replayed" if decision.outcome == "replayed" else "still_invalid",
        what=decision.what,
        reason_code=decision.reason_code,
        reason=decision.reason,
        produced_to=produced_to,
        key=key.decode("utf-8", "replace") if key is not None else None,
        replayed_at=at,
        operator=who,
        version=version,
    )
