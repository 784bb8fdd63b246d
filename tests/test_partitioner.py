"""Partitioner (fslog/partitioner.py): keys land where Kafka's clients would put them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner
from kafka.partitioner.default import murmur2 as kafka_murmur2

from fslog.records.partitioner import StickyPartitioner, murmur2, partition_for_key


@pytest.mark.parametrize("data,expected", [
    # from Kafka's UtilsTest / DefaultPartitionerTest (Java, signed 32-bit results)
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_known_vectors(data, expected):
    assert murmur2(data) == expected


def test_murmur2_is_signed_32_bit():
    for i in range(2000):
        h = murmur2(str(i).encode())
        assert -2**31 <= h < 2**31


@given(st.binary(max_size=200))
@settings(max_examples=1000)
def test_murmur2_matches_kafka_python(data):
    assert murmur2(data) & 0xFFFFFFFF == kafka_murmur2(data)


class _Cluster:
    """The slice of kafka-python's ClusterMetadata that DefaultPartitioner consults."""

    def __init__(self, topic: str, partitions: int):
        self.topic = topic
        self.parts = set(range(partitions))

    def topics(self):
        return {self.topic}

    def partitions_for_topic(self, topic):
        return self.parts

    def available_partitions_for_topic(self, topic):
        return self.parts


@given(st.binary(max_size=64), st.integers(1, 10000))
@settings(max_examples=1000)
def test_partition_for_key_matches_kafka_python(key, partitions):
    expected = DefaultPartitioner().partition("t", key, key, b"v", b"v",
                                              _Cluster("t", partitions))
    assert partition_for_key(key, partitions) == expected
    assert 0 <= expected < partitions


def test_partition_for_key_spreads_keys():
    counts = [0] * 8
    for i in range(8000):
        counts[partition_for_key(f"user-{i}".encode(), 8)] += 1
    assert min(counts) > 800  # roughly uniform


def test_sticky_partitioner_round_robin():
    s = StickyPartitioner(3, start=4)
    assert [s.next() for _ in range(7)] == [1, 2, 0, 1, 2, 0, 1]
    one = StickyPartitioner(1, start=12345)
    assert {one.next() for _ in range(5)} == {0}
