"""The producer: buffers records per partition, encodes whole batches, appends, fsyncs.

``send`` and ``send_values`` only buffer; batches are appended when a partition's buffer
reaches ``batch_bytes``, when ``linger_ms`` has passed (the background sender thread), on
``drain()`` and on ``flush()``. ``flush()`` returns once every record sent before it is
on disk (fsync): that is the acknowledgement. While the producer is open, the sender
thread also fsyncs at least once a second.

Keyed records go to ``murmur2(key) % partitions`` like Kafka's Java client; keyless ones
are spread a batch at a time over the partitions (Kafka's sticky partitioner). Records of
one values-only batch share its timestamp: the time they were handed to ``send_values``.

Batches are compressed with ``compression`` (gzip, snappy, lz4, zstd; see
``records/compression.py``) unless the topic's ``compression.type`` names a codec, which
then wins, as on a Kafka broker.

Thread-safe: ``send``/``flush`` may be called from several threads.
"""

from __future__ import annotations

import os
import threading
import time
from itertools import accumulate
from operator import add

from ..clock import now_ms
from ..errors import FslogError, InvalidInputError, RecordTooLargeError, UnknownTopicError, UsageError
from ..records import batch as rb
from ..records.compression import CODECS, codec_for
from ..records.partitioner import KeyPartitioner, StickyPartitioner

DEFAULT_BATCH_BYTES = 512 * 1024
STICKY_BATCH_BYTES = 64 * 1024
RECORD_OVERHEAD = 24  # upper bound on a record's framing bytes besides key/value/headers


_time = time.time  # the fast path of send() inlines clock.now_ms


def _fit(sizes: list[int], i: int, n: int, room: int, batch_has_records: bool) -> tuple[int, int]:
    """How many of records i..n-1 fit a batch with ``room`` bytes left: (j, bytes used), j
    the largest end with (sizes[j-1] - sizes[i-1]) + (j - i) * RECORD_OVERHEAD <= room.
    ``sizes`` are running totals of the records' sizes. A record bigger than a batch still
    goes alone into an empty batch."""
    before = sizes[i - 1] if i else 0
    lo, hi = i, n
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if sizes[mid - 1] - before + (mid - i) * RECORD_OVERHEAD <= room:
            lo = mid
        else:
            hi = mid - 1
    j = lo
    if j == i and not batch_has_records:
        j = i + 1
    used = sizes[j - 1] - before + (j - i) * RECORD_OVERHEAD if j > i else 0
    return j, used


class _Pending:
    """One batch being filled: values-only or keyed (both sharing one timestamp), or
    general records."""

    __slots__ = ("timestamp", "values", "keys", "records", "nbytes", "klens", "vlens")

    def __init__(self, timestamp: int | None, keyed: bool = False):
        self.timestamp = timestamp  # set for values-only and keyed batches
        self.values: list[bytes] = []
        self.keys: list[bytes] | None = [] if keyed else None  # set for keyed batches
        # the lengths of the keys and values of a keyed batch (taken once, when buffered)
        self.klens: list[int] = []
        self.vlens: list[int] = []
        self.records: list[tuple] = []
        self.nbytes = rb.HEADER_SIZE

    def encode(self, codec: int = 0) -> bytearray:
        if self.keys is not None:
            batch = rb.encode_keyed(self.keys, self.values, self.timestamp or 0,
                                    lengths=(self.klens, self.vlens))
            return rb.compress_batch(batch, codec) if codec else batch
        if self.timestamp is not None:
            batch = rb.encode_values(self.values, self.timestamp)
        else:
            batch = rb.encode_records(self.records)
        return rb.compress_batch(batch, codec) if codec else batch


class PartitionStats:
    __slots__ = ("records", "bytes", "first_offset", "last_offset")

    def __init__(self):
        self.records = 0
        self.bytes = 0
        self.first_offset: int | None = None
        self.last_offset: int | None = None

    def as_dict(self) -> dict:
        return {"records": self.records, "bytes": self.bytes,
                "first_offset": self.first_offset, "last_offset": self.last_offset}


def compression_for(topic_type: str, requested: str | None) -> str:
    """The codec a producer writes: the topic's ``compression.type`` unless it is
    ``producer`` (the default), in which case the producer's own choice (none if it made
    none) — as Kafka's broker keeps or recompresses what producers send."""
    if requested is not None and requested not in CODECS:
        raise UsageError(f"compression {requested!r}: use one of {', '.join(CODECS)}")
    if topic_type == "producer":
        return requested or "none"
    return "none" if topic_type == "uncompressed" else topic_type


def _default_partitions() -> int:
    raw = os.environ.get("FSLOG_DEFAULT_PARTITIONS", "") or "1"
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise FslogError(f"FSLOG_DEFAULT_PARTITIONS={raw!r}: expected a whole number of at "
                         f"least 1 (the partitions of a topic that producing creates)")
    return n


class Producer:
    def __init__(self, log, topic: str, *, create: bool = True, partitions: int | None = None,
                 linger_ms: float = 5, batch_bytes: int = DEFAULT_BATCH_BYTES,
                 background: bool = True, compression: str | None = None):
        self.log = log
        self.created = False
        compression_for("producer", compression)  # a bad name fails before any file is made
        try:
            self.topic = log.topic(topic)
        except UnknownTopicError:
            if not create:
                raise
            n = partitions or _default_partitions()
            self.topic = log.create_topic(topic, partitions=n, if_not_exists=True)
            self.created = self.topic.created
        self.linger = linger_ms / 1000.0
        cfg = self.topic.config
        self.compression = compression_for(cfg.get("compression.type"), compression)
        self._codec = codec_for(self.compression)
        # Kafka refuses keyless records for compacted topics: compaction keeps a key's
        # latest record, and a record without a key has none.
        self._needs_key = cfg.compacted
        # A batch never exceeds max.message.bytes, nor segment.bytes (so that tiny test
        # segments roll as often as their size says).
        self.max_batch = max(1024, min(batch_bytes, cfg.max_message_bytes, cfg.segment_bytes))
        # Keyless records switch partition every ``sticky_batch`` bytes, so that a file of
        # lines is spread over a multi-partition topic (Kafka's batch.size plays this role).
        self.sticky_batch = self.max_batch if self.topic.partition_count == 1 else \
            min(self.max_batch, STICKY_BATCH_BYTES)
        self._sticky = StickyPartitioner(self.topic.partition_count, start=os.getpid())
        self._sticky_current = self._sticky.next()
        self._keys = KeyPartitioner(self.topic.partition_count)
        self._pending: dict[int, list[_Pending]] = {}
        self._pending_bytes: dict[int, int] = {}
        # the open values batch (last in its partition) that send's fast path fills
        self._fast: _Pending | None = None
        self._fast_partition = -1
        self._dirty: set[int] = set()
        self.stats: dict[int, PartitionStats] = {}
        self._lock = threading.RLock()
        self._acquire, self._release = self._lock.acquire, self._lock.release
        self._closed = False
        self._last_sync = time.monotonic()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._background = background
        self._error: BaseException | None = None

    # ------------------------------------------------------------ sending
    def _key_needed(self) -> str:
        return (f"topic {self.topic.name!r} is compacted (cleanup.policy="
                f"{self.topic.config.get('cleanup.policy')}): every record needs a key "
                f"(fslog produce: --key-field or --key-separator)")

    def _check_partition(self, partition: int | None) -> None:
        if partition is not None:
            self.topic.check_partition(partition)

    def _record_limit_check(self, value: bytes | None, key: bytes | None = None,
                            headers=()) -> None:
        """Refuse a record whose batch alone would exceed max.message.bytes (exact size)."""
        limit = self.topic.config.max_message_bytes
        size = rb.single_record_batch_size(value, key, headers or ())
        if size > limit:
            raise RecordTooLargeError(
                f"a record of {len(value) if value is not None else 0} bytes makes a batch of "
                f"{size} bytes, more than max.message.bytes={limit} of topic {self.topic.name!r}; "
                f"a topic's limit is set when it is created: --config max.message.bytes=N")

    def _open_batch(self, partition: int, timestamp: int | None, size: int,
                    limit: int | None = None, keyed: bool = False) -> _Pending:
        self._fast = None  # any other buffering ends the fast path's batch
        batches = self._pending.setdefault(partition, [])
        if batches:
            cur = batches[-1]
            if cur.timestamp == timestamp and (cur.keys is not None) == keyed and \
                    cur.nbytes + size <= (limit or self.max_batch):
                return cur
            if partition == self._sticky_current:
                self._sticky_current = self._sticky.next()
        cur = _Pending(timestamp, keyed)
        batches.append(cur)
        return cur

    def send(self, value: bytes | None, key: bytes | None = None,
             headers: list[tuple[str, bytes | None]] | None = None,
             partition: int | None = None, timestamp: int | None = None) -> int:
        """Buffer one record; return the partition it goes to."""
        if key is None and headers is None and partition is None and timestamp is None \
                and value is not None and self._error is None:
            # The fast path: a keyless record into the values batch the previous keyless
            # record went to (``_fast``: still the last of its partition, see
            # ``_open_batch``), if it is of the same millisecond and has room; otherwise the
            # general path below, which opens the next such batch. (Room within
            # sticky_batch implies the record is within max.message.bytes: see there.)
            size = len(value) + RECORD_OVERHEAD
            ts = int(_time() * 1000)
            self._acquire()  # (half the cost of "with self._lock")
            try:
                fast = self._fast
                if fast is not None and fast.timestamp == ts and \
                        fast.nbytes + size <= self.sticky_batch:
                    fast.values.append(value)
                    fast.nbytes += size
                    p = self._fast_partition
                    total = self._pending_bytes[p] + size
                    self._pending_bytes[p] = total
                    if total >= self.max_batch:
                        self._drain_partition(p)
                    return p
            finally:
                self._release()
        if self._error:
            raise self._error
        if key is None and self._needs_key:
            raise InvalidInputError(self._key_needed())
        self._check_partition(partition)
        size = (len(value) if value is not None else 0) + (len(key) if key is not None else 0) \
            + RECORD_OVERHEAD
        if headers:
            size += sum(len(k) + (len(v) if v is not None else 0) + 10 for k, v in headers)
        if size + rb.HEADER_SIZE > self.topic.config.max_message_bytes:
            self._record_limit_check(value, key, headers)
        with self._lock:
            limit = None
            if partition is None:
                if key is not None:
                    partition = self._keys(key)
                else:
                    partition = self._sticky_current
                    limit = self.sticky_batch
            if key is None and not headers and timestamp is None and value is not None:
                cur = self._open_batch(partition, now_ms(), size, limit)
                cur.values.append(value)
                if limit is not None and headers is None and \
                        limit <= self.topic.config.max_message_bytes:
                    self._fast, self._fast_partition = cur, partition  # see the fast path
            else:
                ts = now_ms() if timestamp is None else timestamp
                cur = self._open_batch(partition, None, size, limit)
                cur.records.append((key, value, ts, list(headers or ())))
            cur.nbytes += size
            self._after_buffer(partition, size)
        return partition

    def send_values(self, values: list[bytes], partition: int | None = None,
                    timestamp: int | None = None, longest: int | None = None) -> None:
        """Buffer keyless, headerless records that share one timestamp: the fast path.
        ``longest``, if the caller knows one, is a bound on the length of every value
        (within the limit, no pass over the values to find the longest)."""
        if self._error:
            raise self._error
        if self._needs_key and values:
            raise InvalidInputError(self._key_needed())
        self._check_partition(partition)
        ts = now_ms() if timestamp is None else timestamp
        limit = self.topic.config.max_message_bytes - rb.HEADER_SIZE - RECORD_OVERHEAD
        with self._lock:
            self._fast = None  # any other buffering ends the fast path's batch
            i = 0
            n = len(values)
            if n and (longest is None or longest > limit) and max(map(len, values)) > limit:
                self._record_limit_check(max(values, key=len))
            # cumulative sizes, to cut the values into batches without a Python loop per record
            sizes = list(accumulate(map(len, values)))
            while i < n:
                p = self._sticky_current if partition is None else partition
                cur = self._open_batch(p, ts, 0, None if partition is not None else self.sticky_batch)
                room = (self.max_batch if partition is not None else self.sticky_batch) - cur.nbytes
                j, used = _fit(sizes, i, n, room, bool(cur.values))
                cur.values.extend(values[i:j] if (i or j != n) else values)
                cur.nbytes += used
                self._after_buffer(p, used)
                if j < n:  # the batch is full: the next one starts fresh
                    self._pending.setdefault(p, []).append(_Pending(ts))
                    if partition is None:
                        self._sticky_current = self._sticky.next()
                i = j

    def send_keyed(self, keys: list[bytes], values: list[bytes], partition: int | None = None,
                   timestamp: int | None = None, longest: int | None = None) -> None:
        """Buffer keyed, headerless records (no null key or value) that share one
        timestamp: the keyed fast path. Each goes to its key's partition (murmur2, as
        ``send``), or to ``partition``; the records of a partition keep their order.
        ``longest``, if the caller knows one, bounds len(key) + len(value) of every record
        (within the limit, no pass over them to find the longest)."""
        if self._error:
            raise self._error
        if len(keys) != len(values):
            raise ValueError("send_keyed: one value for each key")
        if not keys:
            return
        self._check_partition(partition)
        ts = now_ms() if timestamp is None else timestamp
        limit = self.topic.config.max_message_bytes - rb.HEADER_SIZE - RECORD_OVERHEAD
        # the longest key and the longest value together bound every record (exact check,
        # before anything is buffered, only if that bound is over the limit)
        if (longest is None or longest > limit) and \
                max(map(len, keys)) + max(map(len, values)) > limit:
            sizes = list(map(add, map(len, keys), map(len, values)))
            i = sizes.index(max(sizes))
            if sizes[i] > limit:
                self._record_limit_check(values[i], keys[i])
        with self._lock:
            self._fast = None
            if partition is not None or self.topic.partition_count == 1:
                self._buffer_keyed(partition or 0, keys, values, ts)
            else:
                for p, (ks, vs) in self._keys.split(keys, values).items():
                    self._buffer_keyed(p, ks, vs, ts)

    def _buffer_keyed(self, p: int, keys: list[bytes], values: list[bytes], ts: int) -> None:
        """Append keyed records to partition ``p``'s buffer, a batch of at most max_batch
        bytes at a time (cut without a Python loop per record, as send_values does)."""
        n = len(keys)
        cur = self._open_batch(p, ts, 0, None, keyed=True)
        klens = list(map(len, keys))
        vlens = list(map(len, values))
        total = sum(klens) + sum(vlens) + n * RECORD_OVERHEAD
        if cur.nbytes + total <= self.max_batch:  # all of them fit the open batch
            cur.keys.extend(keys)  # type: ignore[union-attr]
            cur.values.extend(values)
            cur.klens.extend(klens)
            cur.vlens.extend(vlens)
            cur.nbytes += total
            self._after_buffer(p, total)
            return
        sizes = list(accumulate(map(add, klens, vlens)))
        i = 0
        while i < n:
            if i:
                cur = self._open_batch(p, ts, 0, None, keyed=True)
            room = self.max_batch - cur.nbytes
            j, used = _fit(sizes, i, n, room, bool(cur.values))
            whole = not i and j == n
            cur.keys.extend(keys if whole else keys[i:j])  # type: ignore[union-attr]
            cur.values.extend(values if whole else values[i:j])
            cur.klens.extend(klens if whole else klens[i:j])
            cur.vlens.extend(vlens if whole else vlens[i:j])
            cur.nbytes += used
            self._after_buffer(p, used)
            if j < n:  # the batch is full: the next one starts fresh
                self._pending.setdefault(p, []).append(_Pending(ts, keyed=True))
            i = j

    def _after_buffer(self, partition: int, size: int) -> None:
        total = self._pending_bytes.get(partition, 0) + size
        self._pending_bytes[partition] = total
        if total >= self.max_batch:
            self._drain_partition(partition)
        elif self._background and self._thread is None:
            self._start_sender()

    # ------------------------------------------------------------ appending
    def _drain_partition(self, partition: int) -> None:
        if partition == self._fast_partition:
            self._fast = None
        pend = self._pending.pop(partition, None)
        self._pending_bytes[partition] = 0
        if not pend:
            return
        encoded = [b.encode(self._codec) for b in pend if b.values or b.records]
        if not encoded:
            return
        part = self.topic.partition(partition)
        ranges = part.append(encoded)
        self._dirty.add(partition)
        st = self.stats.get(partition)
        if st is None:
            st = self.stats[partition] = PartitionStats()
        for data, (first, last) in zip(encoded, ranges):
            if st.first_offset is None:
                st.first_offset = first
            st.last_offset = last
            st.records += last - first + 1
            st.bytes += len(data)

    def drain(self) -> None:
        """Append every buffered record (visible to readers; not yet fsynced)."""
        with self._lock:
            for p in list(self._pending):
                self._drain_partition(p)

    def sync(self) -> None:
        """fsync everything appended so far."""
        with self._lock:
            for p in sorted(self._dirty):
                self.topic.partition(p).sync()
            self._dirty.clear()
            self._last_sync = time.monotonic()

    def flush(self) -> None:
        """Append and fsync every record sent so far: on return they are acknowledged."""
        if self._error:
            raise self._error
        with self._lock:
            self.drain()
            self.sync()

    def maybe_sync(self, interval: float = 1.0) -> None:
        """fsync if there is unsynced data older than ``interval`` seconds."""
        if self._dirty and time.monotonic() - self._last_sync >= interval:
            self.sync()

    @property
    def repairs(self) -> list[dict]:
        """Torn tails truncated by this producer's appends (a crashed writer's partial batch,
        or a damaged last batch): each a dict with topic, partition, path, position, bytes
        and offset (the first offset that was in it)."""
        return [r for p in list(self.topic._partitions.values()) for r in p.repairs]

    @property
    def clean_errors(self) -> list[tuple[int, Exception]]:
        """(partition, error) of each clean run after a roll that failed: the records were
        appended and acknowledged all the same; ``fslog clean`` retries the clean."""
        return [(p.number, e) for p in list(self.topic._partitions.values())
                for e in p.clean_errors]

    @property
    def buffered(self) -> int:
        return sum(self._pending_bytes.values())

    # ------------------------------------------------------------ background sender
    def _start_sender(self) -> None:
        self._thread = threading.Thread(target=self._sender, name="fslog-sender", daemon=True)
        self._thread.start()

    def _sender(self) -> None:
        while not self._closed:
            self._wake.wait(self.linger)
            self._wake.clear()
            try:
                with self._lock:
                    if self._closed:
                        return
                    self.drain()
                    self.maybe_sync(1.0)
            except BaseException as e:  # surfaced on the next send/flush
                self._error = e
                return

    def close(self) -> None:
        """Flush, stop the sender thread, release files."""
        try:
            if not self._closed:
                self.flush()
        finally:
            self._closed = True
            self._wake.set()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=5)
            self.topic.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
