"""Which partition a record goes to, exactly as Kafka's Java client picks it.

Keyed records: ``(murmur2(key) & 0x7fffffff) % partitions`` (Kafka's
``Utils.toPositive(Utils.murmur2(key)) % numPartitions``), so a topic moved to Kafka keeps
every key in the same partition. Keyless records are spread "sticky": a whole batch goes to
one partition and the next batch to the next one, as Kafka's default partitioner does.
"""

from __future__ import annotations

import struct

_WORDS: dict[int, object] = {}  # n -> struct unpacking n little-endian uint32s


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), as a signed 32-bit int like Java's."""
    length = len(data)
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    h = 0x9747B28C ^ length
    n4 = length >> 2
    if n4:
        words = _WORDS.get(n4)
        if words is None:
            words = _WORDS[n4] = struct.Struct("<%dI" % n4).unpack_from
        for k in words(data):  # type: ignore[operator]
            k = (k * m) & mask
            k ^= k >> 24
            h = ((h * m) & mask) ^ ((k * m) & mask)
    rest = length & 3
    if rest:
        tail = n4 * 4
        if rest == 3:
            h ^= data[tail + 2] << 16
        if rest >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class KeyPartitioner:
    """Partitions of many keys at once, murmur2 computed once per distinct key: a bounded
    cache (emptied when it holds ``cache_size`` keys) remembers the partition of the keys
    seen, so a stream over a few thousand keys costs a dictionary lookup per record."""

    def __init__(self, partitions: int, cache_size: int = 1 << 16):
        self.partitions = partitions
        self.cache_size = cache_size
        self._cache: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        p = self._cache.get(key)
        if p is None:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            p = self._cache[key] = (murmur2(key) & 0x7FFFFFFF) % self.partitions
        return p

    def partition_all(self, keys: list[bytes]) -> list[int]:
        """The partition of each key."""
        cache = self._cache
        got = list(map(cache.get, keys))
        if None in got:
            missing = set(keys).difference(cache)
            if len(missing) + len(cache) > self.cache_size:
                cache.clear()
                if len(missing) > self.cache_size:  # mostly unique keys: no cache
                    n = self.partitions
                    return [(murmur2(k) & 0x7FFFFFFF) % n for k in keys]
                missing = set(keys)
            n = self.partitions
            for k in missing:
                cache[k] = (murmur2(k) & 0x7FFFFFFF) % n
            got = list(map(cache.__getitem__, keys))
        return got  # type: ignore[return-value]

    def split(self, keys: list[bytes], values: list) -> dict[int, tuple[list, list]]:
        """{partition: (keys, values)} keeping the order of the records of each."""
        if self.partitions == 1:
            return {0: (keys, values)}
        ks: list[list] = [[] for _ in range(self.partitions)]
        vs: list[list] = [[] for _ in range(self.partitions)]
        for k, v, p in zip(keys, values, self.partition_all(keys)):
            ks[p].append(k)
            vs[p].append(v)
        return {p: (ks[p], vs[p]) for p in range(self.partitions) if ks[p]}


class StickyPartitioner:
    """Hands out one partition per batch of keyless records, round-robin."""

    def __init__(self, partitions: int, start: int = 0):
        self.partitions = partitions
        self._next = start % partitions if partitions else 0

    def next(self) -> int:
        p = self._next
        self._next = (p + 1) % self.partitions
        return p
