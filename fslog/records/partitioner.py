"""Which partition a record goes to, exactly as Kafka's Java client picks it.

Keyed records: ``(murmur2(key) & 0x7fffffff) % partitions`` (Kafka's
``Utils.toPositive(Utils.murmur2(key)) % numPartitions``), so a topic moved to Kafka keeps
every key in the same partition. Keyless records are spread "sticky": a whole batch goes to
one partition and the next batch to the next one, as Kafka's default partitioner does.
"""

from __future__ import annotations


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), as a signed 32-bit int like Java's."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    n4 = length // 4
    for i in range(n4):
        i4 = i * 4
        k = (data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24))
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = n4 * 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class StickyPartitioner:
    """Hands out one partition per batch of keyless records, round-robin."""

    def __init__(self, partitions: int, start: int = 0):
        self.partitions = partitions
        self._next = start % partitions if partitions else 0

    def next(self) -> int:
        p = self._next
        self._next = (p + 1) % self.partitions
        return p
