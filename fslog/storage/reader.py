"""Reading partitions: Kafka's fetch path, over memory-mapped segments, with no locks.

``PartitionReader`` walks one partition from an offset, across segment rolls, and hands
out whole checked batches. ``TopicReader`` interleaves the partitions of a topic, knows
where to stop (the log-end offsets seen at start, or never when following) and turns
batches into ``ConsumerRecord`` s for library users.

Readers never see a batch that is not completely written: see ``segment.py``. Readers
are not thread-safe; use one per thread.
"""

from __future__ import annotations

from bisect import bisect_left
from functools import partial
from itertools import repeat
from typing import Any, Iterator, NamedTuple, Sequence

from ..errors import CorruptRecordError, FslogError, OffsetOutOfRangeError
from ..records import batch as rb
from .partition import Partition
from .segment import SegmentReader


class ConsumerRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


# ConsumerRecord / Record from a tuple of all their fields, in C (namedtuple's own _make)
_new_consumer_record = partial(tuple.__new__, ConsumerRecord)
_new_record = partial(tuple.__new__, rb.Record)


class FetchedBatch(NamedTuple):
    partition: int
    header: rb.BatchHeader
    data: bytes          # the whole batch, starting at its header
    min_offset: int      # records below this offset were already delivered / not wanted
    path: str
    position: int

    def plain_values(self) -> list | None:
        """The values from ``min_offset`` on if this is a plain batch (see
        ``batch.decode_plain_values``: offset ``first_offset + i``, the batch's base
        timestamp, no key, no headers), else None."""
        h = self.header
        if h.record_count < rb.PLAIN_MIN_RECORDS:
            return None
        vals = rb.decode_plain_values(self.data, 0, h)
        if vals is not None and self.min_offset > h.base_offset:
            return vals[self.min_offset - h.base_offset:]
        return vals

    def keyed(self, with_keys: bool = True) -> tuple[Any, Any] | None:
        """(keys, values) from ``min_offset`` on if this is a keyed batch of the shape
        ``batch.encode_keyed`` writes (offset ``first_offset + i``, the batch's base
        timestamp, no headers), else None. ``with_keys`` False: (None, values)."""
        h = self.header
        if h.record_count < rb.PLAIN_MIN_RECORDS:
            return None
        got = rb.decode_keyed(self.data, 0, h, with_keys)
        if got is not None and self.min_offset > h.base_offset:
            skip = self.min_offset - h.base_offset
            return (got[0][skip:] if with_keys else None), got[1][skip:]
        return got

    @property
    def first_offset(self) -> int:
        return max(self.header.base_offset, self.min_offset)

    @property
    def dense(self) -> bool:
        """Record i has offset base + i (not a compacted batch with gaps)."""
        h = self.header
        return h.last_offset_delta + 1 == h.record_count

    def end_at(self, stop: int | None) -> int:
        """Where the partition continues once all of this batch below ``stop`` is
        delivered: the batch's end (a compacted batch may end past its last record), or
        ``stop`` if that comes first. Never past ``stop``: offsets there are not delivered."""
        nxt = self.header.next_offset
        return nxt if stop is None or nxt < stop else stop

    def cut(self, stop: int | None, limit: int | None,
            records: Sequence[rb.Record] | None = None) -> tuple[int, int]:
        """The delivery rule: how many of this batch's records (from ``min_offset``, as
        ``records()``/``values()`` list them) to deliver before the stop offset ``stop``
        and within ``limit`` records (None: no bound), and the offset the partition
        continues at after them (what may be committed once they are delivered).

        ``records``: this batch's ``records()``, needed only for a batch with offset gaps
        cut by ``limit`` (decoded here if not given)."""
        end = self.end_at(stop)
        if self.dense:
            first = self.first_offset
            n = max(0, end - first)
            if limit is not None and n > limit:
                n = limit
                end = first + n
            return n, end
        if stop is None and limit is None:
            return (len(records) if records is not None else len(self.records())), end
        recs = self.records() if records is None else records
        n = bisect_left([r.offset for r in recs], end)
        if limit is not None and n > limit:
            n = limit
            end = recs[n - 1].offset + 1 if n else self.first_offset
        return n, end

    def records(self) -> list[rb.Record]:
        vals = self.plain_values()
        if vals is not None:
            first = self.first_offset
            return list(map(_new_record, zip(range(first, first + len(vals)),
                                             repeat(self.header.base_timestamp), repeat(None),
                                             vals, repeat(()))))
        kv = self.keyed()
        if kv is not None:
            first = self.first_offset
            return list(map(_new_record, zip(range(first, first + len(kv[1])),
                                             repeat(self.header.base_timestamp), kv[0], kv[1],
                                             repeat(()))))
        recs = rb.decode_records(self.data, 0, self.header, self.path)
        if self.header.base_offset < self.min_offset:
            recs = [r for r in recs if r.offset >= self.min_offset]
        return recs

    def values(self) -> list:
        h = self.header
        if h.last_offset_delta + 1 != h.record_count:
            # offsets with gaps (a compacted batch): go through the full decoder
            return [r.value for r in self.records()]
        vals = self.plain_values()
        if vals is not None:
            return vals
        kv = self.keyed(with_keys=False)
        if kv is not None:
            return kv[1]
        try:
            vals = rb.decode_values(self.data, 0, h)
        except CorruptRecordError as e:
            raise CorruptRecordError(f"{self.path}: {e}", self.path, self.position,
                                     h.base_offset) from None
        skip = self.min_offset - h.base_offset
        return vals[skip:] if skip > 0 else vals


class PartitionReader:
    """Reads one partition from ``offset`` onward. ``next_offset`` is the next to deliver."""

    def __init__(self, partition: Partition, offset: int, skip_corrupt: bool = False):
        self.partition = partition
        self.next_offset = offset
        self.skipped = 0  # records skipped because they were deleted by retention
        # (first offset, offset read from instead) for each such skip, for warnings
        self.retention_skips: list[tuple[int, int]] = []
        # With skip_corrupt, damaged data is stepped over (to the next valid batch) and
        # reported here instead of raised: dicts with path, position, bytes, offsets.
        self.skip_corrupt = skip_corrupt
        self.damage: list[dict] = []
        # Offsets must continue from batch to batch: the base offset is not covered by the
        # CRC, so this is what catches a damaged one. This holds for compacted logs too:
        # the cleaner keeps batch ranges contiguous (see cleaner.py).
        self._expect: int | None = None  # base offset the batch at _pos must have
        self._seg: SegmentReader | None = None
        self._pos = 0
        self._error: CorruptRecordError | None = None
        self._reseek_at: tuple[int, int] | None = None  # where the last re-seek happened
        self._seek(offset)

    def _seek(self, offset: int) -> None:
        if self._seg is not None:
            self._seg.close()
            self._seg = None
        while True:
            bases = self.partition.segment_bases()
            if not bases:
                return
            start = bases[0]
            if offset < start:
                # deleted by retention before this reader got there: go on from the log
                # start offset, and say how many were missed (never an endless error)
                self.skipped += start - offset
                self.retention_skips.append((offset, start))
                offset = start
                self.next_offset = offset
            base = max(b for b in bases if b <= offset)
            try:
                self._seg = SegmentReader(self.partition.path, base)
            except FileNotFoundError:
                continue  # deleted (retention) or replaced (compaction) meanwhile: look again
            break
        self._pos, self._expect = self._seg.locate(offset)

    def close(self) -> None:
        if self._seg is not None:
            self._seg.close()
            self._seg = None

    def fetch(self, max_bytes: int = 4 << 20) -> list[FetchedBatch]:
        """Complete batches available now, from ``next_offset``, up to about ``max_bytes``."""
        out: list[FetchedBatch] = []
        if self._error is not None:
            raise self._error
        try:
            self._fetch_into(out, max_bytes)
        except CorruptRecordError as e:
            if not out:
                raise
            self._error = e  # hand out the good batches first; raise on the next fetch
        return out

    def _fetch_into(self, out: list, max_bytes: int) -> None:
        total = 0
        if self._seg is None:
            if not self.partition.segment_bases():
                return
            self._seek(self.next_offset)
            if self._seg is None:
                return
        seg = self._seg
        while total < max_bytes:
            got = None
            try:
                got = seg.read_batch(self._pos, self._expect)
                if got is not None and self._expect is not None \
                        and got[0].base_offset != self._expect:
                    raise seg.discontinuity(self._pos, got[0], self._expect)
            except CorruptRecordError:
                if not self.skip_corrupt:
                    raise
                if got is not None and self._expect is not None:
                    # a whole, CRC-valid batch under a damaged base offset: its length and
                    # record count are sound, so exactly this batch is stepped over
                    h = got[0]
                    nxt = self._expect + h.last_offset_delta + 1
                    self._skip_damage(seg, self._pos + h.size, nxt)
                    self._expect = nxt
                    continue
                found = seg.next_valid_batch(self._pos, self.next_offset)
                if found is not None:
                    self._skip_damage(seg, found[0], found[1])
                    self._expect = found[1]
                    continue
                newer = [b for b in self.partition.segment_bases() if b > seg.base_offset]
                # Nothing valid after the damage, yet it is no torn tail (whole records
                # under a damaged length): at least one offset is lost with it (the
                # log-end offset counts it too: ``SegmentReader.next_offset``).
                self._skip_damage(seg, seg.size, newer[0] if newer else self.next_offset + 1)
                got = None
            if got is None:
                if seg.refresh():
                    continue
                newer = [b for b in self.partition.segment_bases() if b > seg.base_offset]
                if not newer:
                    break
                if seg.refresh():  # bytes appended before the roll
                    continue
                if self._pos < seg.size and self.skip_corrupt:
                    # bad bytes in a sealed segment are damage, never a tail in progress:
                    # read on from the next valid batch in it, if there is one
                    found = seg.next_valid_batch(self._pos, self.next_offset)
                    if found is not None:
                        self._skip_damage(seg, found[0], found[1])
                        self._expect = found[1]
                        continue
                    self._skip_damage(seg, seg.size, newer[0])
                elif self._pos < seg.size:
                    # Only the active segment can have a tail still being written (or torn
                    # by a crash, until the next writer truncates it); in a sealed segment,
                    # bytes that are not a valid batch are damage.
                    raise CorruptRecordError(
                        f"{seg.path}: position {self._pos}: {seg.size - self._pos} bytes at the "
                        f"end of a sealed segment are not a valid batch (offset "
                        f"{self.next_offset}); run 'fslog verify' for details",
                        seg.path, self._pos, self.next_offset)
                if newer[0] != self.next_offset and self._reseek_at != (seg.base_offset, self._pos):
                    # The next segment does not start where this one ends: the log changed
                    # under this reader (retention deleted segments, or compaction merged
                    # them into one that now holds the offsets that come next). Find the
                    # offset again; offsets below the log start count as skipped.
                    self._reseek_at = (seg.base_offset, self._pos)
                    self._seek(self.next_offset)
                    if self._seg is None:
                        break
                    seg = self._seg
                    continue
                seg.close()
                try:
                    seg = self._seg = SegmentReader(self.partition.path, newer[0])
                except FileNotFoundError:  # deleted by retention meanwhile
                    self._seg = None
                    self._seek(self.next_offset)
                    if self._seg is None:
                        break
                    seg = self._seg
                    continue
                self._pos = 0
                self._expect = newer[0]
                if newer[0] > self.next_offset:
                    # a gap between segments (written by other tools): step over it
                    self.next_offset = newer[0]
                continue
            h, data = got
            pos = self._pos
            self._pos += len(data)
            self._expect = h.next_offset
            if h.next_offset <= self.next_offset:
                continue
            out.append(FetchedBatch(self.partition.number, h, data, self.next_offset,
                                    seg.path, pos))
            total += len(data)
            self.next_offset = h.next_offset


    def _skip_damage(self, seg: SegmentReader, to_pos: int, to_offset: int) -> None:
        """Step over damaged bytes [self._pos, to_pos) whose records end before ``to_offset``."""
        first = self.next_offset
        self.damage.append({
            "topic": self.partition.topic, "partition": self.partition.number,
            "path": seg.path, "position": self._pos, "bytes": to_pos - self._pos,
            "first_offset": first, "last_offset": max(first, to_offset) - 1})
        self._pos = to_pos
        if to_offset > self.next_offset:
            self.next_offset = to_offset


def resolve_start(partition: Partition, start) -> int:
    """Turn a start spec into an offset: 'beginning', 'end', an int (negative: from the end),
    or ('last', N), or ('time', ms)."""
    if start in (None, "beginning", "earliest"):
        return partition.start_offset()
    if start in ("end", "latest"):
        return partition.end_offset()
    if isinstance(start, tuple):
        kind, n = start
        if kind == "last":
            if n < 0:
                raise FslogError(f"('last', {n}): the number of records must not be negative")
            end = partition.end_offset()
            return max(partition.start_offset(), end - n)
        if kind == "time":
            return offset_for_time(partition, n)
        raise ValueError(f"unknown start {start!r}")
    offset = int(start)
    if offset < 0:
        end = partition.end_offset()
        return max(partition.start_offset(), end + offset)
    end = partition.end_offset()
    if offset > end:
        raise OffsetOutOfRangeError(
            f"offset {offset} is past the end of {partition.topic}/{partition.number} "
            f"(log-end offset {end}); use --offset end to wait for new records")
    return offset


def offset_for_time(partition: Partition, timestamp_ms: int) -> int:
    """First offset whose record timestamp is >= ``timestamp_ms`` (the log-end offset if none)."""
    for base in partition.segment_bases():
        try:
            seg = SegmentReader(partition.path, base)
        except FileNotFoundError:
            continue
        try:
            pos = seg.position_for_time(timestamp_ms)
            for _p, h, data in seg.batches(pos):
                if h.max_timestamp < timestamp_ms:
                    continue
                for r in rb.decode_records(data, 0, h, seg.path):
                    if r.timestamp >= timestamp_ms:
                        return r.offset
        finally:
            seg.close()
    return partition.end_offset()


class TopicReader:
    """Reads a topic's partitions, interleaved batch by batch.

    ``start``: a spec for ``resolve_start`` applied to every partition, or a dict
    {partition: spec}. ``stop_at_end``: stop at the log-end offsets seen at creation.
    """

    def __init__(self, topic, partitions: list[int] | None = None, start="beginning",
                 stop_at_end: bool = True, skip_corrupt: bool = False):
        self.topic = topic
        numbers = list(range(topic.partition_count)) if partitions is None else list(partitions)
        self.readers: dict[int, PartitionReader] = {}
        self.stop_offsets: dict[int, int] | None = None
        if stop_at_end:
            self.stop_offsets = {n: topic.partition(n).end_offset() for n in numbers}
        for n in numbers:
            p = topic.partition(n)
            spec = start.get(n, "beginning") if isinstance(start, dict) else start
            self.readers[n] = PartitionReader(p, resolve_start(p, spec), skip_corrupt)

    def caught_up(self) -> bool:
        if self.stop_offsets is None:
            return False
        return all(r.next_offset >= self.stop_offsets[n] for n, r in self.readers.items())

    def fetch(self, max_bytes: int = 4 << 20) -> list[FetchedBatch]:
        """One round over the partitions; batches beyond a stop offset are trimmed later."""
        out: list[FetchedBatch] = []
        for n, r in self.readers.items():
            if self.stop_offsets is not None and r.next_offset >= self.stop_offsets[n]:
                continue
            out.extend(r.fetch(max_bytes))
        return out

    def records(self) -> Iterator[ConsumerRecord]:
        """Every record up to the stop offsets (or what is there now, when following)."""
        name = self.topic.name
        while True:
            batches = self.fetch()
            if not batches:
                return
            for b in batches:
                stop = self.stop_offsets[b.partition] if self.stop_offsets is not None else None
                vals = b.plain_values()
                if vals is not None:
                    # a plain batch: its records are made in C, not one by one
                    first = b.first_offset
                    vals = vals[:b.cut(stop, None)[0]]
                    yield from map(_new_consumer_record, zip(
                        repeat(name), repeat(b.partition), range(first, first + len(vals)),
                        repeat(b.header.base_timestamp), repeat(None), vals, repeat(())))
                    continue
                kv = b.keyed()
                if kv is not None:
                    first = b.first_offset
                    keys, vals = kv
                    n = b.cut(stop, None)[0]
                    keys, vals = keys[:n], vals[:n]
                    yield from map(_new_consumer_record, zip(
                        repeat(name), repeat(b.partition), range(first, first + len(vals)),
                        repeat(b.header.base_timestamp), keys, vals, repeat(())))
                    continue
                recs = b.records()
                for r in recs[:b.cut(stop, None, recs)[0]]:
                    yield ConsumerRecord(name, b.partition, r.offset, r.timestamp, r.key,
                                         r.value, r.headers)
            if self.caught_up():
                return

    __iter__ = records

    def close(self) -> None:
        for r in self.readers.values():
            r.close()
