"""Kafka's default key partitioner (murmur2), as every Java client computes it, only faster.

aiokafka's ``murmur2`` walks the key a byte at a time in Python, and even a word-at-a-time
Python version is slow for one key per callback and four per command. The ``murmurhash2``
package computes the same hash in native code; unit tests hold it to aiokafka's and to the
values of Kafka's own UtilsTest.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from murmurhash2 import murmurhash2

#: The seed of org.apache.kafka.common.utils.Utils.murmur2.
_SEED = 0x9747B28C


def murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data`` as ``org.apache.kafka.common.utils.Utils.murmur2`` (unsigned)."""
    return murmurhash2(data, _SEED)


def partition_for(
    key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    """``AIOKafkaProducer(partitioner=...)``: the partition Java clients pick for ``key``."""
    if key is None:
        return random.choice(available or all_partitions)  # noqa: S311 - spreading, not crypto
    return all_partitions[(murmurhash2(key, _SEED) & 0x7FFFFFFF) % len(all_partitions)]
