"""The broker's storage interface: what the protocol layer may ask of the root.

The handlers never touch files, segments or locks; they call a ``BrokerStorage``:
topics (list, describe, create, delete, alter config), append one batch to a partition
(its base offset assigned), fsync a partition, the log start and log-end offsets, read
whole batches from an offset, find an offset by time, and the batch headers at a
partition's tail (to rebuild idempotent-producer state). Everything here blocks (file
I/O, the partition's writer lock, which ``fslog produce`` in another process may hold),
so the server calls it from worker threads.

Thread-safety: appends and fsyncs of one partition are serialized by a per-partition
lock (the storage ``Partition`` object is not thread-safe), but the fsync itself runs
outside it (``Partition.take_unsynced``), so appends go on meanwhile. Reads keep a small
pool of ``PartitionReader`` objects positioned where consumers left off (a consumer's
next Fetch usually continues exactly there); each is used by one thread at a time.
Topic objects are re-opened when their ``topic.json`` changes (another process deleted
and re-created the topic, or altered its config).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Iterator, NamedTuple

from ..config import TopicConfig
from ..errors import FslogError, UnknownTopicError
from ..records import batch as rb
from ..storage import files
from ..storage.reader import PartitionReader
from ..storage.segment import SegmentReader
from ..storage.topic import Topic

READER_POOL = 256  # positioned readers kept for consumers (each holds a mapped segment)
_LOG_APPEND_TIME = 0x08  # batch attributes: the timestamp type bit
# The most a stored compressed batch may inflate to when serve reads its records (a
# ListOffsets by time): a batch sent to fill the server's memory is treated as unreadable.
INFLATE_LIMIT = 100 << 20
PATH_CACHE = 10_000  # topic and partition paths remembered


class OutOfRange(Exception):
    def __init__(self, start: int, end: int):
        super().__init__(f"offset outside {start}..{end}")
        self.start = start
        self.end = end


class ReadResult(NamedTuple):
    records: list[bytes]    # whole batches, the first holding the fetch offset, one each
    size: int               # their bytes in all
    log_start: int
    log_end: int            # the high watermark (no replication: the log-end offset)
    error: Exception | None  # damage met after the batches returned (CorruptRecordError)


class _TopicEntry:
    __slots__ = ("topic", "stamp")

    def __init__(self, topic: Topic, stamp):
        self.topic = topic
        self.stamp = stamp


class _Tail:
    """Tracks a partition's log-end offset by reading only the batches appended since the
    last look (``Partition.end_offset`` rescans from the last index entry each time)."""

    __slots__ = ("reader", "base", "pos", "next_offset")

    def __init__(self):
        self.reader: SegmentReader | None = None
        self.base = -1
        self.pos = 0
        self.next_offset = 0

    def end_offset(self, path: str, bases: list[int]) -> int:
        if not bases:
            self.close()
            return 0
        base = bases[-1]
        r = self.reader
        if r is not None and (r.base_offset != base or _replaced(r)):
            self.close()
            r = None
        if r is None:
            r = self.reader = SegmentReader(path, base)
            self.base = base
            self.pos = 0
            self.next_offset = base
            # start from the last index entry, as SegmentReader.next_offset does
            last = r.index.last()
            if last is not None and 0 <= last[1] and last[1] + rb.HEADER_SIZE <= r.size:
                h = r._header(last[1])
                if h is not None and h.base_offset == base + last[0]:
                    self.pos = last[1]
                    self.next_offset = h.base_offset
        else:
            r.refresh()
            if r.size < self.pos:  # a torn tail was truncated: look again from the start
                self.pos, self.next_offset = 0, base
        pos = self.pos
        size = r.size
        while pos + rb.HEADER_SIZE <= size:
            h = r._header(pos)
            if h is None or h.magic != rb.MAGIC or h.batch_length < rb.HEADER_SIZE - rb.LOG_OVERHEAD:
                break
            end = pos + h.size
            if end > size:
                break
            if end == size and r.read_batch(pos) is None:
                break  # the last batch, still being written (or torn)
            pos = end
            self.next_offset = h.next_offset
        self.pos = pos
        return self.next_offset

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


def _replaced(r: SegmentReader) -> bool:
    """The segment file was replaced (compaction) or deleted (retention) under ``r``."""
    try:
        st = os.stat(r.path)
    except FileNotFoundError:
        return True
    return st.st_ino != os.fstat(r._fd).st_ino


class _PartitionState:
    __slots__ = ("lock", "read_lock", "tail", "dirty", "start")

    def __init__(self):
        self.lock = threading.Lock()       # appends and the fsync hand-over
        self.read_lock = threading.Lock()  # the log-end tracker
        self.tail = _Tail()
        self.dirty = False
        self.start = -1  # the log start offset last seen (for Produce responses)


class BrokerStorage:
    def __init__(self, log, default_partitions: int = 1):
        self.log = log
        self.root = log.root
        self.default_partitions = default_partitions
        self._lock = threading.Lock()
        self._topics: dict[str, _TopicEntry] = {}
        self._parts: dict[tuple[str, int], _PartitionState] = {}
        self._readers: OrderedDict[tuple[str, int, int], PartitionReader] = OrderedDict()
        # paths of topics seen to exist (their names are valid): no validation, no joins
        # on the request path; bounded (cleared past PATH_CACHE entries)
        self._config_paths: dict[str, str] = {}
        self._partition_paths: dict[tuple[str, int], str] = {}

    # ------------------------------------------------------------ topics
    def topic(self, name: str) -> Topic | None:
        """The topic, or None if it does not exist; InvalidNameError for a bad name.
        One stat of its ``topic.json`` (noticing a topic deleted or re-created by another
        process, or its config altered)."""
        cfg = self._config_paths.get(name)
        if cfg is None:
            files.validate_name(name, "topic")
            cfg = os.path.join(files.topic_dir(self.root, name), files.TOPIC_CONFIG_FILE)
        try:
            st = os.stat(cfg)
        except (FileNotFoundError, NotADirectoryError):
            with self._lock:
                self._topics.pop(name, None)
            return None
        if name not in self._config_paths:
            if len(self._config_paths) >= PATH_CACHE:
                self._config_paths.clear()
            self._config_paths[name] = cfg
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            e = self._topics.get(name)
            if e is not None and e.stamp == stamp:
                return e.topic
        try:
            t = Topic(self.root, name)
        except UnknownTopicError:
            return None
        with self._lock:
            old = self._topics.get(name)
            self._topics[name] = _TopicEntry(t, stamp)
        if old is not None:
            self._retire_topic(old.topic)
        return t

    def _retire_topic(self, t: Topic) -> None:
        for number, p in list(t._partitions.items()):
            st = self._state(t.name, number)
            with st.lock:
                try:
                    p.close()
                except (OSError, FslogError):
                    pass

    def topic_names(self) -> list[str]:
        return self.log.topics()

    def create_topic(self, name: str, partitions: int | None = None,
                     config: dict | None = None, if_not_exists: bool = False) -> Topic:
        self.log.create_topic(name, partitions or self.default_partitions, config,
                              if_not_exists=if_not_exists)
        t = self.topic(name)
        if t is None:
            raise UnknownTopicError(f"topic {name!r} vanished right after it was created")
        return t

    def delete_topic(self, name: str) -> None:
        self.log.delete_topic(name)
        with self._lock:
            e = self._topics.pop(name, None)
            for key in [k for k in self._readers if k[0] == name]:
                self._readers.pop(key).close()
        if e is not None:
            self._retire_topic(e.topic)

    def set_config(self, name: str, overrides: dict) -> None:
        t = self.topic(name)
        if t is None:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        t.set_config(overrides)
        self.topic(name)  # re-open with the new config

    def partition_path(self, topic: str, partition: int) -> str:
        key = (topic, partition)
        path = self._partition_paths.get(key)
        if path is None:
            path = files.partition_dir(self.root, topic, partition)
            if len(self._partition_paths) >= PATH_CACHE:
                self._partition_paths.clear()
            self._partition_paths[key] = path
        return path

    def _state(self, topic: str, partition: int) -> _PartitionState:
        key = (topic, partition)
        st = self._parts.get(key)
        if st is None:
            with self._lock:
                st = self._parts.setdefault(key, _PartitionState())
        return st

    def _partition(self, topic: str, partition: int):
        t = self.topic(topic)
        if t is None:
            raise UnknownTopicError(f"topic {topic!r} does not exist")
        return t.partition(partition)

    # ------------------------------------------------------------ writing
    def append(self, topic: str, partition: int, batch: bytearray,
               t: Topic | None = None) -> tuple[int, int]:
        """Append one whole batch (checked by the caller); return its base offset and
        the log start offset. ``t``: the topic, just looked up by the caller (else looked
        up again here)."""
        st = self._state(topic, partition)
        with st.lock:
            p = t.partition(partition) if t is not None else self._partition(topic, partition)
            (first, _last), = p.append([batch])
            st.dirty = True
            if st.start < 0 or p.repairs or first == 0:
                st.start = p.start_offset()
            return first, st.start

    def append_is_quick(self, t: Topic, partition: int, size: int, max_ts: int) -> bool:
        """Will this append to topic ``t`` most likely be a plain write (no roll, no
        cleaner, no file to create)? Then the server may run it on its event loop, saving
        a thread hand-over; the partition lock is held by other writers only for one
        write."""
        p = t._partitions.get(partition)
        st = self._parts.get((t.name, partition))
        if p is None or st is None or st.lock.locked():
            return False
        return not p.may_roll(size, max_ts)

    def sync(self, topic: str, partition: int) -> None:
        """fsync what was appended to the partition before this call."""
        st = self._state(topic, partition)
        with st.lock:
            if not st.dirty:
                return
            st.dirty = False
            t = self.topic(topic)
            if t is None or partition not in t._partitions:
                return
            fds = t._partitions[partition].take_unsynced()
        try:
            for fd in fds:
                os.fsync(fd)
        finally:
            for fd in fds:
                os.close(fd)

    def sync_all(self) -> None:
        for (topic, partition) in list(self._parts):
            try:
                self.sync(topic, partition)
            except (OSError, FslogError):
                pass

    # ------------------------------------------------------------ reading
    def offsets(self, topic: str, partition: int) -> tuple[int, int]:
        """(log start offset, log-end offset)."""
        p = self._partition(topic, partition)
        st = self._state(topic, partition)
        with st.read_lock:
            for _attempt in range(5):
                bases = p.segment_bases()
                try:
                    end = st.tail.end_offset(p.path, bases)
                except FileNotFoundError:  # retention or compaction swapped it: again
                    st.tail.close()
                    continue
                st.start = bases[0] if bases else 0
                return st.start, end
        return p.start_offset(), p.end_offset()

    def at_tail(self, topic: str, partition: int, offset: int) -> bool:
        """Is ``offset`` at (or past) the log-end offset last seen? No I/O: a hint that a
        read from there finds little, just written (in the page cache)."""
        st = self._parts.get((topic, partition))
        return st is not None and st.tail.reader is not None and offset >= st.tail.next_offset

    def read(self, topic: str, partition: int, offset: int, max_bytes: int) -> ReadResult:
        """Whole batches from the one holding ``offset``, about ``max_bytes`` but at least
        one batch (KIP-74); OutOfRange below the log start or past the log-end offset."""
        start, end = self.offsets(topic, partition)
        if offset < start or offset > end:
            raise OutOfRange(start, end)
        if offset == end:
            return ReadResult([], 0, start, end, None)
        key = (topic, partition, offset)
        with self._lock:
            r = self._readers.pop(key, None)
        if r is None:
            r = PartitionReader(self._partition(topic, partition), offset)
        error = None
        try:
            got = r.fetch(max(1, max_bytes))
        except FslogError as e:
            got, error = [], e
        except FileNotFoundError:
            got = []
        if r.skipped:  # the log start moved (retention) while reading: say so
            r.close()
            raise OutOfRange(*self.offsets(topic, partition))
        chunks = [b.data for b in got]  # sent as they are: no join, no copy
        if error is None and got:
            with self._lock:
                self._readers[(topic, partition, r.next_offset)] = r
                while len(self._readers) > READER_POOL:
                    self._readers.popitem(last=False)[1].close()
        else:
            r.close()
        if got and got[-1].header.next_offset > end:
            end = got[-1].header.next_offset
        return ReadResult(chunks, sum(map(len, chunks)), start, end, error)

    def _segments(self, topic: str, partition: int, last: int | None = None
                  ) -> Iterator[SegmentReader]:
        """The partition's segments, oldest first (only the ``last`` newest ones if given),
        each open for the time the caller holds it; a segment deleted (retention) or
        replaced (compaction) since the listing is skipped."""
        p = self._partition(topic, partition)
        bases = p.segment_bases()
        for base in bases if last is None else bases[-last:]:
            try:
                seg = SegmentReader(p.path, base)
            except FileNotFoundError:
                continue
            try:
                yield seg
            finally:
                seg.close()

    def offset_for_time(self, topic: str, partition: int, timestamp: int) -> tuple[int, int]:
        """(offset, timestamp) of the first record with a timestamp >= ``timestamp``, or
        (-1, -1) if there is none (Kafka's answer to ListOffsets). Compressed batches are
        decompressed to find the record inside them."""
        for seg in self._segments(topic, partition):
            for _p, h, data in seg.batches(seg.position_for_time(timestamp)):
                if h.max_timestamp < timestamp:
                    continue
                if h.attributes & _LOG_APPEND_TIME:  # the batch's time is every record's
                    return h.base_offset, h.max_timestamp
                for r in rb.decode_records(data, 0, h, seg.path, INFLATE_LIMIT):
                    if r.timestamp >= timestamp:
                        return r.offset, r.timestamp
        return -1, -1

    def max_timestamp(self, topic: str, partition: int) -> tuple[int, int]:
        """(greatest timestamp, offset of the last record that holds it), or (-1, -1)."""
        best = (-1, -1)
        for seg in self._segments(topic, partition):
            for _pos, h, data in seg.batches(0):
                if h.max_timestamp >= best[0] and h.record_count:
                    best = (h.max_timestamp, _offset_of_max(data, h))
        return best

    def tail_headers(self, topic: str, partition: int, segments: int = 2) -> Iterator[rb.BatchHeader]:
        """Headers of the batches of the last ``segments`` segments, oldest first: where
        idempotent producers' sequence numbers are found again after a restart."""
        for seg in self._segments(topic, partition, last=segments):
            pos = 0
            while pos + rb.HEADER_SIZE <= seg.size:
                h = seg._header(pos)
                if h is None or h.magic != rb.MAGIC or pos + h.size > seg.size \
                        or h.batch_length < rb.HEADER_SIZE - rb.LOG_OVERHEAD:
                    break
                yield h
                pos += h.size

    def close(self) -> None:
        self.sync_all()
        with self._lock:
            readers = list(self._readers.values())
            self._readers.clear()
            topics = [e.topic for e in self._topics.values()]
        for r in readers:
            r.close()
        for t in topics:
            self._retire_topic(t)
        for st in self._parts.values():
            st.tail.close()


def _offset_of_max(data: bytes, h: rb.BatchHeader) -> int:
    """Offset of the last record holding the batch's greatest timestamp (decompressing a
    compressed batch); the batch's last offset for LogAppendTime (every record has the
    batch's time) or records that cannot be read."""
    if h.attributes & _LOG_APPEND_TIME:
        return h.last_offset
    try:
        recs = rb.decode_records(data, 0, h, limit=INFLATE_LIMIT)
    except FslogError:
        return h.last_offset
    best = None
    for r in recs:
        if best is None or r.timestamp >= best.timestamp:
            best = r
    return best.offset if best is not None else h.last_offset


__all__ = ["BrokerStorage", "OutOfRange", "ReadResult", "TopicConfig"]
