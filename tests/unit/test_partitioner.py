"""The bridge's murmur2 partitioner picks the partitions Java clients (and aiokafka) pick."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference
from hypothesis import given
from hypothesis import strategies as st

from bridge.kafka.partitioner import murmur2, partition_for


@given(st.binary(max_size=300))
def test_murmur2_matches_aiokafka(key: bytes) -> None:
    assert murmur2(key) == reference(key)


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_partition_matches_the_default_partitioner(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_for(key, partitions, partitions) == DefaultPartitioner()(
        key, partitions, partitions
    )


def test_known_java_values() -> None:
    # Values from org.apache.kafka.common.utils.UtilsTest#testMurmur2 (as unsigned ints).
    assert murmur2(b"21") & 0xFFFFFFFF == -973932308 & 0xFFFFFFFF
    assert murmur2(b"foobar") & 0xFFFFFFFF == -790332482 & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") & 0xFFFFFFFF == -985981536 & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-longer-string") & 0xFFFFFFFF == -1486304829 & 0xFFFFFFFF
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") & 0xFFFFFFFF == (
        -58897971 & 0xFFFFFFFF
    )


def test_keyless_records_go_to_an_available_partition() -> None:
    assert partition_for(None, [0, 1, 2], [2]) == 2
    assert partition_for(None, [0, 1, 2], []) in {0, 1, 2}
