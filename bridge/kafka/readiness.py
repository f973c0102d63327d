"""When a successful metadata probe may say Kafka is reachable again after a failed produce."""

from __future__ import annotations


def probe_may_restore(failed_at: float | None, now: float, hold: float) -> bool:
    """Whether a metadata probe that succeeded at ``now`` may report Kafka ready again.

    ``failed_at`` is when the last produce failed, None once a produce has succeeded since.
    Metadata is answered by any broker that runs, also while writes cannot succeed (two of
    three brokers down, the partitions below ``min.insync.replicas`` or without a leader), so
    after a failed produce only a produce that succeeds, or ``hold`` seconds without another
    failure (no callbacks have tried since), count as Kafka being back; else ``/readyz``
    would flap between a failed produce and the next probe.
    """
    return failed_at is None or now - failed_at >= hold
