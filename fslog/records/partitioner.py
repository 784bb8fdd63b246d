"""Which partition a record goes to, exactly as Kafka's Java client picks it.

Keyed records: ``(murmur2(key) & 0x7fffffff) % partitions`` (Kafka's
``Utils.toPositive(Utils.murmur2(key)) % numPartitions``), so a topic moved to Kafka keeps
every key in the same partition. Keyless records are spread "sticky": a whole batch goes to
one partition and the next batch to the next one, as Kafka's default partitioner does.
"""

from __future__ import annotations

import struct
from itertools import groupby, repeat
from operator import itemgetter, mod
from typing import Sequence

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


def murmur2_positive_all(keys: list[bytes]) -> list[int]:
    """``murmur2(key) & 0x7fffffff`` of each of ``keys``, which all have the same length:
    the keys side by side as 64-bit lanes of one integer, so that each step of murmur2 is
    one big-integer operation for all of them (in C) rather than one per key. A lane
    holds a 32-bit value; products (below 2**63) stay in their lane, and every step masks
    the lanes back to 32 bits."""
    n = len(keys)
    if n < 8:
        return [murmur2(k) & 0x7FFFFFFF for k in keys]
    length = len(keys[0])
    data = b"".join(keys)
    if len(data) != n * length:
        raise ValueError("murmur2_positive_all: keys of one length only")
    m = 0x5BD1E995
    ones = int.from_bytes(b"\x01\x00\x00\x00\x00\x00\x00\x00" * n, "little")
    mask = 0xFFFFFFFF * ones
    h = (0x9747B28C ^ length) * ones
    lanes = bytearray(8 * n)
    tail = length & ~3
    for w in range(0, tail, 4):
        for b in range(4):
            lanes[b::8] = data[w + b::length]
        k = (int.from_bytes(lanes, "little") * m) & mask
        k ^= (k >> 24) & mask
        h = ((h * m) & mask) ^ ((k * m) & mask)
    rest = length & 3
    if rest:
        lanes = bytearray(8 * n)
        for b in range(rest):
            lanes[b::8] = data[tail + b::length]
        h = ((h ^ int.from_bytes(lanes, "little")) * m) & mask
    h ^= (h >> 13) & mask
    h = (h * m) & mask
    h ^= (h >> 15) & mask
    h &= 0x7FFFFFFF * ones
    return list(struct.unpack("<%dQ" % n, h.to_bytes(8 * n, "little")))


def partition_for_key(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class KeyPartitioner:
    """Partitions of many keys at once, murmur2 computed once per distinct key: a bounded
    cache (emptied when it holds ``cache_size`` keys) remembers the partition of the keys
    seen, so a stream over a few thousand keys costs a dictionary lookup per record. The
    keys not seen yet are hashed together, those of one length at a time
    (``murmur2_positive_all``), so unique keys cost a fraction of ``murmur2`` each."""

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
        return list(self._partitions(keys))

    def _partitions(self, keys: list[bytes]) -> Sequence[int]:
        cache = self._cache
        if len(keys) < 2:
            return [self(k) for k in keys]
        try:
            return itemgetter(*keys)(cache)  # (one call in C: cheaper than a map)
        except KeyError:
            pass
        missing = set(keys).difference(cache)
        if len(missing) + len(cache) > self.cache_size:
            cache.clear()
            if len(missing) > self.cache_size:  # mostly unique keys: no cache
                return itemgetter(*keys)(self._compute(missing))
            missing = set(keys)
        cache.update(self._compute(missing))
        return itemgetter(*keys)(cache)

    def _compute(self, keys) -> dict[bytes, int]:
        """{key: partition} of distinct keys, murmur2 computed for the keys of each length
        together (``murmur2_positive_all``)."""
        out: dict[bytes, int] = {}
        n = self.partitions
        for _, same in groupby(sorted(keys, key=len), len):
            group = list(same)
            for i in range(0, len(group), 4096):  # (lanes of one integer within a cache)
                part = group[i:i + 4096]
                out.update(zip(part, map(mod, murmur2_positive_all(part), repeat(n))))
        return out

    def split(self, keys: list[bytes], values: list) -> dict[int, tuple[list, list]]:
        """{partition: (keys, values)} keeping the order of the records of each."""
        if self.partitions == 1:
            return {0: (keys, values)}
        ks: list[list] = [[] for _ in range(self.partitions)]
        vs: list[list] = [[] for _ in range(self.partitions)]
        for k, v, p in zip(keys, values, self._partitions(keys)):
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
