"""One log segment: a ``.log`` of RecordBatch v2 batches with its two index sidecars.

``SegmentReader`` maps a segment for reading; it takes no lock and may run in any number
of processes while a writer appends. It treats bytes past the last complete batch as
"not yet written": a batch that runs past the end of the file, or that ends exactly at
the end of the file with a bad CRC (a write still in progress, or torn by a crash), is
never returned. A bad batch with more data after it is corruption and raises
``CorruptRecordError`` naming the file, position and offset.

``SegmentWriter`` appends to the active segment. Only one may exist per partition at a
time, across processes: callers hold the partition lock (``partition.py``). Opening one
recovers the tail: batches after the last offset-index entry are checked (length, magic,
CRC) and a torn or invalid tail is truncated; missing or inconsistent indexes are rebuilt
from the log. Index files are only ever grown in place; when they must shrink they are
rewritten beside and renamed over, so a reader's mapping of the old file stays valid.
"""

from __future__ import annotations

import mmap
import os

from ..errors import CorruptRecordError
from ..records import batch as rb
from . import files
from .index import (
    OFFSET_ENTRY,
    TIME_ENTRY,
    IndexView,
    IndexWriter,
    open_offset_index,
    open_time_index,
    write_index_file,
)

_RELEASE_STEP = 32 << 20


class SegmentReader:
    """Read-only view of one segment. Not thread-safe; cheap to create."""

    def __init__(self, directory: str, base_offset: int):
        self.directory = directory
        self.base_offset = base_offset
        self.path = os.path.join(directory, files.segment_name(base_offset))
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        self._map: mmap.mmap | None = None
        self.size = 0
        self._released = 0  # pages before this position were released (madvise)
        self._index: IndexView | None = None
        self.refresh()

    # -- mapping
    def refresh(self) -> bool:
        """Remap if the file grew; return True if there are new bytes."""
        size = os.fstat(self._fd).st_size
        if size == self.size:
            return False
        if self._map is not None:
            self._map.close()
            self._map = None
        self.size = size
        if size:
            self._map = mmap.mmap(self._fd, size, prot=mmap.PROT_READ)
        return True

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._index is not None:
            self._index.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- batches
    def read_batch(self, pos: int, expect: int | None = None) -> tuple[rb.BatchHeader, bytes] | None:
        """The checked batch at ``pos`` and its bytes, or None if not (yet) complete.

        ``expect`` is the offset the batch at ``pos`` should start with, if known: bad
        bytes count as damage (CorruptRecordError) only if a valid batch continuing the
        log after them is found, otherwise they are a torn tail (None).
        """
        size = self.size
        if size - pos < rb.HEADER_SIZE:
            return None
        h = self._header(pos)
        if h is None:
            return None
        if h.magic != rb.MAGIC or h.batch_length < rb.HEADER_SIZE - rb.LOG_OVERHEAD:
            if self._changed() or self._is_torn_tail(pos, expect):
                return None
            raise CorruptRecordError(
                f"{self.path}: position {pos}: not a RecordBatch v2 header (magic {h.magic}, "
                f"length {h.batch_length}); run 'fslog verify' for details",
                self.path, pos, expect)
        end = pos + h.size
        if end > size:
            if self._changed() or self._is_torn_tail(pos, expect):
                return None
            raise CorruptRecordError(
                f"{self.path}: position {pos}: batch length {h.batch_length} runs past the end "
                f"of the file, but valid batches follow: damaged header; run 'fslog verify'",
                self.path, pos, h.base_offset)
        if end == size:
            # The last batch of the file is read with pread, never through the map: if it
            # is a torn tail, the next writer truncates it, and touching a mapped page past
            # the new end of the file would kill this process with SIGBUS.
            data = os.pread(self._fd, h.size, pos)
            if len(data) < h.size:
                return None
        else:
            if os.fstat(self._fd).st_size < end:
                # The file shrank under the map (a writer repaired a torn tail): pages past
                # its end must not be touched (SIGBUS). Remap and look again.
                self.refresh()
                return self.read_batch(pos, expect)
            assert self._map is not None  # size > 0
            data = self._map[pos:end]
            if end - self._released > _RELEASE_STEP:
                self._release_before(pos)
        if rb.crc32c_range(data, rb.CRC_START, h.size) != h.crc:
            if end == size or self._shrunk() or self._is_torn_tail(pos, expect):
                return None  # a write in progress, or a torn tail the next writer drops
            raise CorruptRecordError(
                f"{self.path}: position {pos}: CRC mismatch in the batch at offset "
                f"{h.base_offset}; run 'fslog verify' for details", self.path, pos, h.base_offset)
        return h, data

    def next_valid_batch(self, pos: int, min_offset: int) -> tuple[int, int] | None:
        """(position, base offset) of the first complete, CRC-valid batch after the damage
        at ``pos`` whose base offset is at least ``min_offset``; None if there is none."""
        window = 64 << 20
        overlap = 16 << 20  # a batch longer than this, straddling two windows, is missed
        start = pos + 1
        while start < self.size:
            stop = min(self.size, start + window)
            buf = os.pread(self._fd, stop - start, start)
            at = 0
            while True:
                found = rb.find_valid_batch(buf, at)
                if found < 0:
                    break
                base = rb.read_header(buf, found).base_offset
                if base >= min_offset:
                    return start + found, base
                at = found + 1
            if stop == self.size:
                return None
            start = stop - overlap
        return None

    def _release_before(self, pos: int) -> None:
        """Drop this process's mapping of pages before ``pos`` (they stay in the page
        cache): a reader streaming a 1 GiB segment keeps a bounded resident set."""
        upto = pos - pos % mmap.PAGESIZE
        if upto > self._released and self._map is not None:
            try:
                self._map.madvise(mmap.MADV_DONTNEED, self._released, upto - self._released)
            except (AttributeError, OSError, ValueError):
                pass
            self._released = upto

    def _header(self, pos: int) -> rb.BatchHeader | None:
        """The batch header at ``pos``, read with pread (see ``read_batch``)."""
        raw = os.pread(self._fd, rb.HEADER_SIZE, pos)
        if len(raw) < rb.HEADER_SIZE:
            return None
        return rb.read_header(raw, 0)

    def _changed(self) -> bool:
        # The file grew or a writer truncated a torn tail: the caller refreshes and retries.
        return os.fstat(self._fd).st_size != self.size

    def _shrunk(self) -> bool:
        # A writer truncated a torn tail under this mapping: the caller refreshes.
        return os.fstat(self._fd).st_size < self.size

    def _is_torn_tail(self, pos: int, expect: int | None) -> bool:
        """Bad bytes at ``pos``: a torn tail (not yet written, or cut short by a crash), or
        damage? See ``batch.tail_is_torn``. Past 64 MiB it is damage, unexamined."""
        rest = self.size - pos
        if rest > 64 << 20:
            return False
        return rb.tail_is_torn(os.pread(self._fd, rest, pos), expect)

    def batches(self, pos: int = 0, expect: int | None = None):
        """Yield (position, header, bytes) from ``pos`` to the last complete batch.

        ``expect``: the base offset of the batch at ``pos`` (known at position 0). A batch
        whose base offset does not continue the log raises ``CorruptRecordError``.
        """
        if pos == 0:
            expect = self.base_offset
        while True:
            got = self.read_batch(pos, expect)
            if got is None:
                return
            h, data = got
            if expect is not None and h.base_offset != expect:
                raise self.discontinuity(pos, h, expect)
            yield pos, h, data
            pos += len(data)
            expect = h.next_offset

    def discontinuity(self, pos: int, h: rb.BatchHeader, expect: int) -> CorruptRecordError:
        """The error for a CRC-valid batch at ``pos`` whose base offset (which the CRC does
        not cover) is not ``expect``, the offset that comes next."""
        return CorruptRecordError(
            f"{self.path}: position {pos}: the batch says it starts at offset "
            f"{h.base_offset}, but offset {expect} comes next (a damaged batch header); "
            f"run 'fslog verify' for details", self.path, pos, expect)

    # -- lookups
    @property
    def index(self) -> IndexView:
        if self._index is None:
            self._index = open_offset_index(
                os.path.join(self.directory, files.segment_name(self.base_offset, files.INDEX_SUFFIX)))
        return self._index

    def position_for(self, offset: int) -> int:
        """Position of the batch that holds ``offset``, or of the first batch after it."""
        return self.locate(offset)[0]

    def locate(self, offset: int) -> tuple[int, int]:
        """(position, base offset the batch there must have) of the batch that holds
        ``offset``, or of the first batch after it, or of where valid batches end.

        Index lookup (greatest entry <= offset), then a scan of batch headers that follows
        offset continuity: the scan stops at a header that does not continue the log (a
        damaged base offset or length), so the caller reads and reports it. An index
        entry that does not point at the right batch is ignored (scan from the start).
        """
        pos = 0
        expect = self.base_offset
        e = self.index.lookup(offset - self.base_offset)
        if e is not None:
            rel, p = e
            if 0 <= p and p + rb.HEADER_SIZE <= self.size:
                h = self._header(p)
                if h is not None and h.base_offset == self.base_offset + rel:
                    pos, expect = p, self.base_offset + rel
        while pos + rb.HEADER_SIZE <= self.size:
            h = self._header(pos)
            if h is None:
                break
            # offsets by continuity: a damaged base offset is not believed
            nxt = expect + h.last_offset_delta + 1
            if nxt > offset or h.magic != rb.MAGIC or pos + h.size > self.size \
                    or h.batch_length < rb.HEADER_SIZE - rb.LOG_OVERHEAD \
                    or h.last_offset_delta < 0:
                return pos, expect  # the batch holding ``offset``, or where valid batches end
            pos += h.size
            expect = nxt
        return pos, expect

    def position_for_time(self, timestamp: int) -> int:
        """Position of the first batch that may hold a record with timestamp >= ``timestamp``."""
        tindex = open_time_index(
            os.path.join(self.directory, files.segment_name(self.base_offset, files.TIMEINDEX_SUFFIX)))
        try:
            start_offset = self.base_offset
            e = tindex.lookup(timestamp - 1)  # greatest entry with ts < timestamp
            if e is not None:
                start_offset = self.base_offset + e[1]
        finally:
            tindex.close()
        pos, expect = self.locate(start_offset)
        if e is not None:
            # The entry says no record up to the batch holding start_offset reaches e[0];
            # an entry the log does not bear out is ignored (scan the whole segment).
            got = self.read_batch(pos)
            if got is None or got[0].base_offset > start_offset or got[0].max_timestamp > e[0]:
                pos = 0
        for p, h, _data in self.batches(pos, expect):
            if h.max_timestamp >= timestamp:
                return p
        return self.size

    def next_offset(self) -> int:
        """Offset after the last complete batch (the log-end offset if this is the active segment).

        Damage in the middle does not hide what follows it: a batch with a bad CRC is
        stepped over to the next valid batch (as ``--skip-corrupt`` reads), and a CRC-valid
        batch with a damaged base offset counts for the offsets continuity gives it.
        """
        last = self.index.last()
        pos, expect = 0, self.base_offset
        if last is not None and 0 <= last[1] and last[1] + rb.HEADER_SIZE <= self.size:
            h = self._header(last[1])
            if h is not None and h.base_offset == self.base_offset + last[0]:
                pos, expect = last[1], self.base_offset + last[0]
        while True:
            try:
                got = self.read_batch(pos, expect)
            except CorruptRecordError:
                found = self.next_valid_batch(pos, expect + 1)
                if found is None:
                    # damage that is no torn tail, with nothing valid after it: it holds
                    # at least offset ``expect`` (readers stop there and report it)
                    return expect + 1
                pos, expect = found
                continue
            if got is None:
                return expect
            h, data = got
            pos += len(data)
            expect = (h.next_offset if h.base_offset == expect
                      else expect + h.last_offset_delta + 1)


class SegmentIndexer:
    """The one rule for when a batch earns index entries, as Kafka's ``LogSegment.append``
    keeps both indexes: a batch starting ``index.interval.bytes`` or more after the last
    indexed one (never the first batch, at position 0) gets an offset-index entry, and
    with it a time-index entry if the segment's greatest timestamp so far grew past the
    last time entry. ``seal`` adds the segment's greatest timestamp when it stops growing.

    Used by ``SegmentWriter`` for appends, recovery and index rebuilds, and by the
    cleaner for the segments it writes. Batches are noted in order (``add``); the entries
    they earn wait in ``entries``/``times`` until ``take``. Holds no file: not shared.
    """

    def __init__(self, base_offset: int, interval: int,
                 last_entry: tuple[int, int] | None = None,
                 last_time: tuple[int, int] | None = None):
        """``last_entry``/``last_time``: the last entries already in the index files
        (resuming an existing segment), or None."""
        self.base_offset = base_offset
        self.interval = interval
        self.last_index_position = last_entry[1] if last_entry else 0
        self.last_time = last_time[0] if last_time else rb.NO_TIMESTAMP
        self.max_timestamp = self.last_time
        self.next_offset = base_offset + (last_entry[0] if last_entry else 0)
        self.first_timestamp: int | None = None  # known once the batch at 0 is noted
        self.entries: list[tuple[int, int]] = []  # (relative offset, position)
        self.times: list[tuple[int, int]] = []    # (timestamp, relative offset)

    def add(self, pos: int, h: rb.BatchHeader) -> None:
        """Note the batch with header ``h`` at byte ``pos`` of the segment."""
        if pos == 0:
            self.first_timestamp = h.base_timestamp
        # (pos > last: recovery rescans the last indexed batch; with index.interval.bytes=0
        # it must not be indexed twice)
        if pos > self.last_index_position and pos - self.last_index_position >= self.interval:
            rel = h.base_offset - self.base_offset
            self.entries.append((rel, pos))
            self.last_index_position = pos
            ts = max(self.max_timestamp, h.max_timestamp)
            if ts > self.last_time:
                self.times.append((ts, rel))
                self.last_time = ts
        if h.max_timestamp > self.max_timestamp:
            self.max_timestamp = h.max_timestamp
        self.next_offset = h.next_offset

    def seal(self) -> None:
        """The segment is complete: a last time entry for its greatest timestamp (at its
        last offset: the start of the last batch is not tracked, the last offset is a
        safe bound)."""
        if self.next_offset > self.base_offset and self.max_timestamp > self.last_time:
            self.times.append((self.max_timestamp, self.next_offset - 1 - self.base_offset))
            self.last_time = self.max_timestamp

    def take(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The offset- and time-index entries earned since the last ``take``."""
        out = self.entries, self.times
        self.entries, self.times = [], []
        return out


class SegmentWriter:
    """The active segment of a partition, open for appends. Caller holds the partition lock."""

    def __init__(self, directory: str, base_offset: int, index_interval: int):
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval = index_interval
        self.path = os.path.join(directory, files.segment_name(base_offset))
        self.index_path = os.path.join(directory, files.segment_name(base_offset, files.INDEX_SUFFIX))
        self.timeindex_path = os.path.join(directory, files.segment_name(base_offset, files.TIMEINDEX_SUFFIX))
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                          files.FILE_MODE)
        try:
            self.index = IndexWriter(self.index_path, OFFSET_ENTRY)
            self.timeindex = IndexWriter(self.timeindex_path, TIME_ENTRY)
            self.indexer = SegmentIndexer(base_offset, index_interval)
            self.size = 0
            self.truncated_bytes = 0
            self.truncated_at = 0
            self.recover()
        except BaseException:
            # a refused recovery (damage that is not a torn tail) or an I/O error: a
            # long-running process (fslog serve) asks again on the next append, and must
            # not keep three descriptors per refusal
            os.close(self.fd)
            self.fd = -1
            for ix in (getattr(self, "index", None), getattr(self, "timeindex", None)):
                if ix is not None:
                    ix.close()
            raise

    @property
    def next_offset(self) -> int:
        """The offset the next appended record gets."""
        return self.indexer.next_offset

    @property
    def first_timestamp(self) -> int | None:
        """The first batch's base timestamp (segment.ms counts from it), None if empty."""
        return self.indexer.first_timestamp

    # -- recovery
    def recover(self) -> None:
        """Check the tail, truncate a torn one, bring the indexes in line with the log:
        the batches after the last offset-index entry are replayed through the indexer
        (all of them, with both indexes rewritten, if the indexes are inconsistent)."""
        size = os.fstat(self.fd).st_size
        entries_ok, start = self._check_index_tail(size)
        if not entries_ok:
            self.rebuild_indexes()
            return
        self.indexer = SegmentIndexer(self.base_offset, self.index_interval,
                                      self.index.last(), self.timeindex.last())
        self._replay(start, size)
        entries, times = self.indexer.take()
        self.index.append_many(entries)
        self.timeindex.append_many(times)

    def rebuild_indexes(self) -> None:
        """Rebuild both indexes from the whole .log (truncating a torn tail)."""
        size = os.fstat(self.fd).st_size
        self.indexer = SegmentIndexer(self.base_offset, self.index_interval)
        self._replay(0, size)
        entries, times = self.indexer.take()
        self.index.close()
        self.timeindex.close()
        self.index = _replace_index(self.index_path, OFFSET_ENTRY, entries)
        self.timeindex = _replace_index(self.timeindex_path, TIME_ENTRY, times)

    def _replay(self, start: int, size: int) -> None:
        """Note the valid batches from ``start`` in the indexer; truncate a torn tail."""
        end = start
        if size:
            with mmap.mmap(self.fd, size, prot=mmap.PROT_READ) as m:
                while True:
                    try:
                        h = rb.check_batch(m, end, size, self.path)
                    except (rb.Incomplete, CorruptRecordError):
                        break
                    if h.base_offset != self.indexer.next_offset:
                        break  # a damaged base offset (outside the CRC): see _truncate_tail
                    self.indexer.add(end, h)
                    end += h.size
        if end < size:
            self._truncate_tail(end, size)
        self.size = end
        if self.indexer.first_timestamp is None and end:
            self.indexer.first_timestamp = rb.read_header(
                os.pread(self.fd, rb.HEADER_SIZE, 0), 0).base_timestamp

    def _truncate_tail(self, end: int, size: int) -> None:
        """Drop a torn tail: bytes after the last valid batch that no valid batch follows.

        Bad bytes with valid batches after them are damage, not a crash: refuse, rather
        than truncate acknowledged records away.
        """
        rest = size - end
        data = os.pread(self.fd, rest, end) if rest <= (64 << 20) else None
        if data is None or not rb.tail_is_torn(data, self.next_offset):
            raise CorruptRecordError(
                f"{self.path}: position {end}: damaged batch in the active segment (offset "
                f"{self.next_offset}) that is not the tail of a write cut short: valid records "
                f"follow or it holds whole records; fslog will not truncate acknowledged "
                f"records, nor append after damage: run 'fslog verify' and restore the file "
                f"from a copy", self.path, end, self.next_offset)
        os.ftruncate(self.fd, end)
        self.truncated_bytes = rest
        self.truncated_at = end  # position; the records from self.next_offset on are gone

    def _check_index_tail(self, size: int) -> tuple[bool, int]:
        """(index consistent?, position to scan from)."""
        last = self.index.last()
        if last is None:
            # No offset entries: fine for a segment still smaller than one interval;
            # otherwise the index was lost and both are rebuilt from the log.
            return self.timeindex.entries == 0 and size <= self.index_interval * 2, 0
        rel, pos = last
        if pos <= 0 or pos + rb.HEADER_SIZE > size or rel <= 0:
            return False, 0
        base, _len = rb.peek_offset_and_length(os.pread(self.fd, 12, pos), 0)
        if base != self.base_offset + rel:
            return False, 0
        tlast = self.timeindex.last()
        if tlast is not None and not (0 <= tlast[1] <= rel):
            return False, 0
        return True, pos

    # -- appends
    def append(self, data: bytes | bytearray, headers: list[tuple[int, rb.BatchHeader]]) -> None:
        """Write ``data`` (whole batches, offsets already set) at the end, then index it.

        ``headers`` lists (position within data, header) of each batch in ``data``.
        """
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.write(self.fd, view[written:])
        except OSError:
            # A full disk or a file-size limit cut the write short: take the partial
            # batch back out (this writer holds the lock), so the log stays valid.
            if written:
                try:
                    os.ftruncate(self.fd, self.size)
                except OSError:
                    pass  # the next writer drops it as a torn tail
            raise
        start = self.size
        for rel_pos, h in headers:
            self.indexer.add(start + rel_pos, h)
        self.size = start + len(data)
        entries, times = self.indexer.take()
        self.index.append_many(entries)
        self.timeindex.append_many(times)

    def seal(self) -> None:
        """Before a roll: record the segment's greatest timestamp in its time index."""
        self.indexer.seal()
        self.timeindex.append_many(self.indexer.take()[1])

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.index.close()
        self.timeindex.close()


def _replace_index(path: str, entry, entries: list[tuple[int, int]]) -> IndexWriter:
    tmp = path + ".rebuild"
    write_index_file(tmp, entry, entries)
    os.replace(tmp, path)
    return IndexWriter(path, entry)
