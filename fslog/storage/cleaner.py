"""The log cleaner: retention and compaction of one partition, as Kafka's log retention
and LogCleaner do them. Run by ``fslog clean`` (``clean_partition``) and by a producer
right after it rolls a segment (``clean_after_roll``: retention there, compaction in a
background process that inherits the cleaner lock: forked from a single-threaded
producer, ``python -m fslog.storage.cleaner`` otherwise; nice +10), so no daemon is
needed and no producer waits for a compaction.

Retention (``cleanup.policy`` includes ``delete``): whole sealed segments are deleted,
oldest first, while the oldest one's newest record is more than ``retention.ms`` old, or
while the partition without it still holds at least ``retention.bytes``. The active
segment is never deleted. The log start offset (the oldest segment's base offset) moves
forward. A reader that has a deleted segment open goes on reading it: an unlinked file
stays readable while it is open (and mapped).

Compaction (``cleanup.policy`` includes ``compact``; see ``compact`` for the offset map,
bounded by ``log.cleaner.dedupe.buffer.size``, and its passes): once the dirty ratio — bytes of
sealed segments not compacted yet over bytes of all sealed segments — exceeds
``min.cleanable.dirty.ratio``, the sealed segments are rewritten keeping, of each key,
only its latest record among them. Offsets never change and order is kept; keyless
records are dropped (Kafka's cleaner does the same; producers refuse them for compacted
topics). A tombstone (a null value) deletes its key and is itself removed by the first
compaction after its timestamp is ``delete.retention.ms`` old. The active segment is
never touched, so the latest value of a key written there is not yet compacted against.
``cleaner-checkpoint.json`` records the first dirty offset (the active segment's base
offset at the last compaction); ``cleaner-error.json``, why the last background
compaction failed, until one succeeds (``background_failure``).

Cleaned batches keep Kafka's layout: each keeps the base offset of the batch it came from
and covers the offsets up to the next one (its lastOffsetDelta may extend past its last
record, as Kafka's cleaner writes them; offsets removed at the start of a group go into
an empty batch), so offsets stay contiguous from batch to batch and readers still check
continuity.
A cleaned batch is compressed with the codec of the batch it came from, as Kafka's cleaner
does (uncompressed if that codec does not make it smaller; an empty batch never is).
A group of consecutive sealed segments, at most ``segment.bytes`` together, is rewritten
into one segment named by the first's base offset; a group whose records all go is
written as one empty batch that carries its offset range.

The swap, crash-safe (kill -9 at any moment leaves the old segments or the new one, never
a mix or a loss): for a group ``b1..bk`` ending at offset E,

    1. write b1.log.cleaned, b1.index.cleaned, b1.timeindex.cleaned; fsync them
    2. write the marker b1.swap.json {"base", "end", "replaces": [b2..bk]} atomically:
       from here on the swap is rolled forward
    3. rename the new indexes, then the new .log, over b1's
    4. delete b2..bk (.log first), then the marker

``recover`` (at the start of every clean, and in ``fslog verify --repair``) redoes steps
3-4 for every marker left behind and removes ``.cleaned`` files that have none. Between
steps 3 and 4 readers see the new b1 overlapping b2..bk: they skip offsets they already
have, so they neither repeat nor miss a record.

Concurrency: one cleaner per partition at a time (``.cleaner.lock``, flock); producers
append to the active segment and readers read, in any process, while a clean runs. A
compaction of a large partition forks one helper process that reads the second half of
the segments for the offset map (``_build_map``); it writes nothing but its pipe.
"""

from __future__ import annotations

import errno
import json
import os
from bisect import bisect_left
from operator import gt, itemgetter
from typing import Any

from ..clock import now_ms
from ..config import TopicConfig
from ..errors import CorruptRecordError, FslogError, UnsafePathError
from ..records import batch as rb
from . import files
from .index import OFFSET_ENTRY, TIME_ENTRY, open_time_index, write_index_file
from .locks import BlockingLock, ProcessLock
from .segment import SegmentIndexer, SegmentReader
from .topicmeta import read_topic_meta

_SEGMENT_SUFFIXES = (files.LOG_SUFFIX, files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX)
_MAX_GROUP_OFFSETS = (1 << 31) - 1  # relative offsets are int32 in batches and indexes


# ---------------------------------------------------------------- inspection (no lock)

def read_checkpoint(partition) -> int:
    """The first dirty offset: where the part not compacted yet begins (0: all of it)."""
    path = os.path.join(partition.path, files.CLEANER_CHECKPOINT_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return 0
    try:
        with os.fdopen(fd, "rb") as f:
            return max(0, int(json.loads(f.read())["first_dirty_offset"]))
    except (OSError, ValueError, KeyError, TypeError):
        return 0  # unreadable: treat everything as dirty (compaction is idempotent)


def _size(directory: str, base: int) -> int:
    try:
        return os.stat(os.path.join(directory, files.segment_name(base))).st_size
    except FileNotFoundError:
        return 0


def dirty_ratio(partition, bases: list[int] | None = None) -> float:
    """Bytes of sealed segments not compacted yet / bytes of all sealed segments."""
    bases = partition.segment_bases() if bases is None else bases
    first_dirty = read_checkpoint(partition)
    total = dirty = 0
    for b in bases[:-1]:
        n = _size(partition.path, b)
        total += n
        if b >= first_dirty:
            dirty += n
    return dirty / total if total else 0.0


def largest_timestamp(partition, base: int) -> int:
    """The newest record timestamp in a segment (from its time index, checked by a scan
    of the batches after the index's last entry); for a segment whose records carry no
    timestamp (-1), the time its file was last written, as Kafka does."""
    d = partition.path
    tidx = open_time_index(os.path.join(d, files.segment_name(base, files.TIMEINDEX_SUFFIX)))
    try:
        last = tidx.last()
    finally:
        tidx.close()
    best = last[0] if last else rb.NO_TIMESTAMP
    seg = SegmentReader(d, base)
    try:
        pos, expect = seg.locate(base + last[1]) if last else (0, base)
        for _p, h, _d in seg.batches(pos, expect):
            if h.max_timestamp > best:
                best = h.max_timestamp
        if best < 0:
            best = int(os.fstat(seg._fd).st_mtime * 1000)
    finally:
        seg.close()
    return best


def background_failure(partition) -> dict | None:
    """Why the last background compaction of the partition failed — ``{"time_ms",
    "error"}`` from ``cleaner-error.json`` — or None. The file stays until a compaction
    of the partition completes (``fslog clean``, or a later one in the background)."""
    path = os.path.join(partition.path, files.CLEANER_ERROR_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            doc = json.loads(f.read())
        return {"time_ms": int(doc["time_ms"]), "error": str(doc["error"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {"time_ms": 0, "error": f"{path}: unreadable (remove it)"}


def background_failures(topic) -> list[tuple[int, dict]]:
    """(partition number, ``background_failure``) of each partition of the topic that has one."""
    out = []
    for p in topic.partitions():
        f = background_failure(p)
        if f is not None:
            out.append((p.number, f))
    return out


def describe_failure(topic: str, number: int, failure: dict) -> str:
    """One line for users: what failed, when, and what to do."""
    import time
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(failure["time_ms"] / 1000)) \
        if failure["time_ms"] else "an unknown time"
    return (f"{topic}/{number}: the background compaction failed at {when}: {failure['error']}; "
            f"the partition is left as it was: run 'fslog verify {topic}', then "
            f"'fslog clean {topic}' (which retries it and, once it succeeds, clears this)")


def _record_failure(directory: str, error: str) -> None:
    try:
        files.write_atomic(os.path.join(directory, files.CLEANER_ERROR_FILE),
                           json.dumps({"time_ms": now_ms(), "error": error}).encode() + b"\n")
    except OSError:
        pass  # (the directory is gone, or the disk full: nothing better to do)


def _clear_failure(partition) -> None:
    if _unlink(os.path.join(partition.path, files.CLEANER_ERROR_FILE)):
        files.fsync_dir(partition.path)


# ---------------------------------------------------------------- recovery (under the lock)

def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _finish_swap(directory: str, marker_path: str, marker: dict) -> None:
    base = int(marker["base"])
    for suffix in (files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX, files.LOG_SUFFIX):
        src = os.path.join(directory, files.segment_name(base, suffix) + files.CLEANED_SUFFIX)
        if os.path.exists(src):
            os.replace(src, os.path.join(directory, files.segment_name(base, suffix)))
    files.fsync_dir(directory)
    for b in marker["replaces"]:
        for suffix in _SEGMENT_SUFFIXES:
            _unlink(os.path.join(directory, files.segment_name(int(b), suffix)))
    files.fsync_dir(directory)
    os.unlink(marker_path)
    files.fsync_dir(directory)


def recover(partition) -> list[str]:
    """Finish interrupted swaps, drop leftovers of interrupted cleans. Caller holds the
    cleaner lock. Returns what was done, one line each."""
    d = partition.path
    done: list[str] = []
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        return done
    for n in names:
        path = os.path.join(d, n)
        if n.endswith(files.CLEAN_MARKER_SUFFIX):
            try:
                with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
                    marker = json.loads(f.read())
                int(marker["base"])
                [int(b) for b in marker["replaces"]]
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise UnsafePathError(f"{path} is a symbolic link: fslog does not follow "
                                          f"links under its root; remove it") from None
                raise
            except (ValueError, KeyError, TypeError):
                raise FslogError(f"{path}: unreadable record of an interrupted compaction (not "
                                 f"written by fslog?); move it away and run 'fslog verify'") from None
            _finish_swap(d, path, marker)
            done.append(f"{path}: finished the swap of a compaction cut short")
    for n in names:
        if n.endswith(files.CLEANED_SUFFIX) or (files.CLEAN_MARKER_SUFFIX + ".tmp." in n) \
                or (n.startswith(files.CLEANER_CHECKPOINT_FILE + ".tmp.")):
            if _unlink(os.path.join(d, n)):
                done.append(f"{os.path.join(d, n)}: removed the leftover of a clean cut short")
    # index files whose .log retention deleted just before a crash
    bases = partition.segment_bases()
    if bases:
        for n in names:
            for suffix in (files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX):
                if n.endswith(suffix) and n[:-len(suffix)].isdigit():
                    b = int(n[:-len(suffix)])
                    if b < bases[0] and _unlink(os.path.join(d, n)):
                        done.append(f"{os.path.join(d, n)}: removed an index without its segment")
    return done


def _paths_ending(partition, suffix: str) -> list[str]:
    try:
        return [os.path.join(partition.path, n) for n in sorted(os.listdir(partition.path))
                if n.endswith(suffix)]
    except FileNotFoundError:
        return []


def pending_swaps(partition) -> list[str]:
    """Paths of markers of interrupted compactions (for ``fslog verify``)."""
    return _paths_ending(partition, files.CLEAN_MARKER_SUFFIX)


def leftovers(partition) -> list[str]:
    """Paths of half-written segments of cleans cut short (``.cleaned``), for ``fslog
    verify``; the next clean removes them."""
    return _paths_ending(partition, files.CLEANED_SUFFIX)


# ---------------------------------------------------------------- retention

def _delete_segment(directory: str, base: int) -> None:
    # the .log first: with it goes the segment (and the log start offset moves); an
    # index left behind by a crash here is removed by ``recover``
    for suffix in _SEGMENT_SUFFIXES:
        _unlink(os.path.join(directory, files.segment_name(base, suffix)))


def apply_retention(partition, config, now: int) -> list[dict]:
    """Delete sealed segments past retention.ms / retention.bytes, oldest first."""
    rms = config.get("retention.ms")
    rbytes = config.get("retention.bytes")
    if rms < 0 and rbytes < 0:
        return []
    bases = partition.segment_bases()
    sizes = [_size(partition.path, b) for b in bases]
    total = sum(sizes)
    deleted = []
    for i, b in enumerate(bases[:-1]):
        reason = None
        if rbytes >= 0 and total - sizes[i] >= rbytes:
            reason = "retention.bytes"
        elif rms >= 0 and now - largest_timestamp(partition, b) > rms:
            reason = "retention.ms"
        if reason is None:
            break
        _delete_segment(partition.path, b)
        total -= sizes[i]
        deleted.append({"base_offset": b, "end_offset": bases[i + 1], "size_bytes": sizes[i],
                        "reason": reason})
    if deleted:
        files.fsync_dir(partition.path)
    return deleted


# ---------------------------------------------------------------- compaction

class _SegmentBuilder:
    """Writes one cleaned segment (``.cleaned`` files) with its two indexes."""

    def __init__(self, directory: str, base: int, index_interval: int):
        self.directory = directory
        self.base = base
        self.path = os.path.join(directory, files.segment_name(base) + files.CLEANED_SUFFIX)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                          files.FILE_MODE)
        self.size = 0
        self.indexer = SegmentIndexer(base, index_interval)

    def add(self, data: bytearray) -> None:
        pos = self.size
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self.size += len(data)
        self.indexer.add(pos, rb.read_header(data, 0))

    def finish(self) -> None:
        """fsync the .log.cleaned and write both indexes beside it."""
        self.indexer.seal()
        entries, times = self.indexer.take()
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        for suffix, entry, rows in ((files.INDEX_SUFFIX, OFFSET_ENTRY, entries),
                                    (files.TIMEINDEX_SUFFIX, TIME_ENTRY, times)):
            p = os.path.join(self.directory, files.segment_name(self.base, suffix) + files.CLEANED_SUFFIX)
            write_index_file(p, entry, rows, sync=True)

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        for suffix in _SEGMENT_SUFFIXES:
            _unlink(os.path.join(self.directory, files.segment_name(self.base, suffix)
                                 + files.CLEANED_SUFFIX))


def _groups(partition, bases: list[int], segment_bytes: int,
            estimate: dict[int, int] | None = None) -> list[tuple[list[int], int]]:
    """Consecutive sealed segments to rewrite together: ([bases], end offset). A group's
    segments are at most ``segment_bytes`` together once cleaned: ``estimate`` gives an
    upper bound of a segment's cleaned size where the offset map tells it (its size on
    disk otherwise)."""
    estimate = estimate or {}
    out: list[tuple[list[int], int]] = []
    cur: list[int] = []
    cur_size = 0
    for i, b in enumerate(bases[:-1]):
        size = estimate.get(b)
        if size is None:
            size = _size(partition.path, b)
        end = bases[i + 1]
        if cur and (cur_size + size > segment_bytes or end - cur[0] > _MAX_GROUP_OFFSETS):
            out.append((cur, b))
            cur, cur_size = [], 0
        cur.append(b)
        cur_size += size
    if cur:
        out.append((cur, bases[-1]))
    return out


# Memory of one offset-map entry besides its key's bytes: the key's bytes object header,
# the offset's int object, the dict's slot (with the slack of its growth) and the entry
# of the sorted list of surviving offsets (measured on CPython 3.11-3.13, rounded up).
MAP_ENTRY_BYTES = 160


def _batch_keys(seg_path: str, h: rb.BatchHeader, data: bytes, values: bool = True):
    """(offsets, keys, values, records) of one batch for the cleaner. A keyed batch of the
    producer's shape (``batch.decode_keyed``) comes without a Python loop per record
    and ``records`` None (every record then has a key, a value, no headers and the
    batch's base timestamp; ``values`` False: a keys-only scan, values None); any other
    batch goes through the general decoder, and ``records`` holds them."""
    kv: Any = rb.decode_keyed(data, 0, h, with_values=values)
    if kv is not None:
        return range(h.base_offset, h.next_offset), kv[0], kv[1], None
    recs = rb.decode_records(data, 0, h, seg_path)
    return [r.offset for r in recs], [r.key for r in recs], [r.value for r in recs], recs


class _OffsetMap:
    """Kafka's offset map for one pass: ``latest`` (key -> its latest offset among the
    records from ``start`` to ``upto``), ``survivors`` (those offsets, sorted: the
    records of that range that compaction keeps, tombstones aside), ``simple`` (base
    offsets of the batches of that range in the producer's keyed shape: a key and a
    value in every record, no headers) and ``batches`` (segment base -> (base offset,
    next offset, size, record count) of the batches of that range it holds)."""

    def __init__(self, start: int):
        self.start = start
        self.upto = start
        self.latest: dict[bytes, int] = {}
        self.survivors: list[int] = []
        self.simple: set[int] = set()
        self.batches: dict[int, list[tuple[int, int, int, int]]] = {}
        self.overflowed = False  # half the budget was not enough for half the segments

    def kept(self, base: int, nxt: int) -> tuple[int, int]:
        """(lo, hi): ``survivors[lo:hi]`` are the kept offsets of ``base..nxt - 1``."""
        lo = bisect_left(self.survivors, base)
        return lo, bisect_left(self.survivors, nxt, lo)

    def estimate(self) -> dict[int, int]:
        """An upper bound of each segment's cleaned size, by segment base: a batch that
        loses every record takes no room, one that loses none keeps its bytes, one that
        loses some at most its bytes and its offset deltas grown by a varint byte or two
        (the cleaned batch's range may begin earlier)."""
        out = {}
        for seg, rows in self.batches.items():
            total = 0
            for base, nxt, size, count in rows:
                lo, hi = self.kept(base, nxt)
                if hi == lo:
                    continue
                total += size if hi - lo == count else size + 2 * (hi - lo) + rb.HEADER_SIZE
            out[seg] = total + rb.HEADER_SIZE  # (an empty batch for offsets removed first)
        return out


# A map build over more than this many bytes of segments scans its second half in a
# helper process (``_Helper``), on another core, while this process scans the first.
PARALLEL_MIN_BYTES = 64 << 20
HELPER_WITH_THREADS = False  # fork only a single-threaded process (tests set this)


def _build_map(partition, bases: list[int], start: int, end: int, budget: int,
               parallel: bool = True) -> _OffsetMap:
    """Kafka's offset map: the latest offset of each key in the records from ``start``
    to ``end`` (the active segment's base offset), until the map holds ``budget`` bytes.
    The map covers offsets below ``m.upto`` (a batch end; ``end`` if everything fit). A
    keys-only scan: values are not looked at, and a batch of the producer's keyed shape
    costs one regex split and one dict update (no object per record).

    With two cores or more and a range of more than ``PARALLEL_MIN_BYTES``, the segments
    of its second half are scanned by a forked helper while this process scans the first,
    each within half the budget (so both maps together stay within it); then the helper's
    map is merged in (its offsets are the later ones). Should this process's half fill
    its half of the budget, the helper is stopped and the scan goes on here alone, as
    without it (``m.overflowed``: the next passes go without one); a helper that fails is
    replaced the same way."""
    m = _OffsetMap(start)
    segs = [(b, bases[i + 1]) for i, b in enumerate(bases[:-1]) if bases[i + 1] > start]
    helper = _Helper.start(partition, segs, start, end, budget) if parallel else None
    if helper is None:
        stopped = _scan(m, partition, segs, start, end, budget, 0)[1]
    else:
        mine, theirs = segs[:helper.split], segs[helper.split:]
        try:
            def overflow() -> None:
                m.overflowed = True
                helper.cancel()
            used, stopped = _scan(m, partition, mine, start, end, budget, 0,
                                  budget // 2, overflow)
            if not stopped:
                merged = None if helper.cancelled else helper.merge_into(m)
                if merged is not None:
                    stopped = merged
                else:
                    stopped = _scan(m, partition, theirs, start, end, budget, used)[1]
        finally:
            helper.cancel()
    if not stopped:
        m.upto = end
    m.survivors = sorted(m.latest.values())
    return m


def _scan(m: _OffsetMap, partition, segs: list[tuple[int, int]], start: int, end: int,
          budget: int, used: int, soft: int | None = None, on_soft=None) -> tuple[int, bool]:
    """Add the keys of the records from ``start`` on in segments ``segs`` ((base, next
    base) each) to ``m``; stop after the batch with which the map holds ``budget`` bytes
    (``m.upto`` is set there: (used, True)). ``on_soft()`` is called once it holds ``soft``
    bytes. Returns (bytes the map holds, whether it stopped)."""
    latest = m.latest
    for b, _next in segs:
        # (a segment the map's range begins or ends within has no estimate: its batches
        # outside the range are not looked at)
        rows = m.batches.setdefault(b, []) if b >= start else []
        for h, data in _segment_raw_batches(partition, b):
            if h.next_offset <= start:
                continue
            offsets, keys, _values, recs = _batch_keys(partition.path, h, data, values=False)
            if recs is not None:
                if None in keys:
                    pairs = [(k, o) for k, o in zip(keys, offsets) if k is not None]
                    offsets, keys = [o for _, o in pairs], [k for k, _ in pairs]
            elif h.base_offset >= start:
                m.simple.add(h.base_offset)
            rows.append((h.base_offset, h.next_offset, len(data), h.record_count))
            before = len(latest)
            latest.update(zip(keys, offsets))
            new = len(latest) - before
            if new:
                used += new * (MAP_ENTRY_BYTES + sum(map(len, keys)) // len(keys))
                if soft is not None and used >= soft:
                    soft = None
                    on_soft()
            if used >= budget and h.next_offset < end:
                m.batches.pop(b, None)
                m.upto = h.next_offset
                return used, True
    return used, False


class _Helper:
    """A forked process that scans the second half of a map build's segments (see
    ``_build_map``) and sends its map back through a pipe, in chunks (so neither side
    holds a second copy of it). It only reads; it exits if this process goes away."""

    CHUNK = 1 << 16  # map entries a message

    def __init__(self, pid: int, fd: int, split: int):
        self.pid = pid
        self.fd = fd
        self.split = split
        self.cancelled = False
        self.reaped = False

    @classmethod
    def start(cls, partition, segs: list[tuple[int, int]], start: int, end: int,
              budget: int) -> _Helper | None:
        import threading
        if len(segs) < 2 or (os.cpu_count() or 1) < 2 \
                or (threading.active_count() > 1 and not HELPER_WITH_THREADS) \
                or os.environ.get("FSLOG_CLEANER_PROCESSES") == "1":
            return None
        sizes = [_size(partition.path, b) for b, _ in segs]
        total = sum(sizes)
        if total <= PARALLEL_MIN_BYTES:
            return None
        split, acc = 1, sizes[0]
        while split < len(segs) - 1 and acc + sizes[split] <= total // 2:
            acc += sizes[split]
            split += 1
        r, w = os.pipe()
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return None
        if pid == 0:  # the helper
            code = 1
            try:
                os.close(r)
                code = cls._run(partition, segs[split:], start, end, budget - budget // 2,
                                w, parent)
            finally:
                os._exit(code)
        os.close(w)
        return cls(pid, r, split)

    @classmethod
    def _run(cls, partition, segs, start: int, end: int, budget: int, fd: int,
             parent: int) -> int:
        import marshal
        m = _OffsetMap(segs[0][0])
        used = 0
        stopped = False
        for seg in segs:
            if os.getppid() != parent:
                return 1  # the cleaner is gone: so is the need
            used, stopped = _scan(m, partition, [seg], start, end, budget, used)
            if stopped:
                break
        out = os.fdopen(fd, "wb")
        latest = m.latest
        head = marshal.dumps((m.upto if stopped else None, sorted(m.simple), m.batches, len(latest)))
        out.write(len(head).to_bytes(8, "big") + head)
        keys = list(latest)
        for i in range(0, len(keys), cls.CHUNK):
            chunk = keys[i:i + cls.CHUNK]
            body = marshal.dumps((chunk, [latest[k] for k in chunk]))
            out.write(len(body).to_bytes(8, "big") + body)
        out.close()
        return 0

    def merge_into(self, m: _OffsetMap) -> bool | None:
        """Add the helper's map to ``m`` (its offsets are later: they win); return
        whether the helper stopped at the budget (``m.upto`` is then set), or None if it
        failed (then nothing was added)."""
        import marshal
        with os.fdopen(self.fd, "rb") as f:
            self.fd = -1

            def message():
                n = f.read(8)
                if len(n) < 8:
                    return None
                try:
                    return marshal.loads(f.read(int.from_bytes(n, "big")))
                except (EOFError, ValueError, TypeError):  # cut short
                    return None
            head = message()
            if head is None:
                return None
            upto, simple, batches, count = head
            chunks = []  # (all of it read before any is merged: a failure adds nothing)
            got = 0
            while got < count:
                chunk = message()
                if chunk is None:
                    return None
                chunks.append(chunk)
                got += len(chunk[0])
        for keys, offsets in chunks:
            m.latest.update(zip(keys, offsets))
        m.simple.update(simple)
        m.batches.update(batches)
        if upto is not None:
            m.upto = upto
        return upto is not None

    def cancel(self) -> None:
        """Stop the helper (if it runs) and reap it."""
        self.cancelled = self.cancelled or not self.reaped
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if not self.reaped:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.reaped = True


def _segment_raw_batches(partition, base: int):
    """Yield (header, bytes) of every batch of a sealed segment; damage raises."""
    seg = SegmentReader(partition.path, base)
    try:
        end = 0
        for pos, h, data in seg.batches(0):
            yield h, data
            end = pos + len(data)
        if end != seg.size:
            raise CorruptRecordError(
                f"{seg.path}: position {end}: {seg.size - end} bytes at the end of a sealed "
                f"segment are not a valid batch; the cleaner leaves this partition alone: run "
                f"'fslog verify'", seg.path, end, None)
    finally:
        seg.close()


def compaction_due(partition, config, bases: list[int] | None = None) -> bool:
    """Would ``compact`` (not forced) run now: two segments or more, and a dirty ratio
    above min.cleanable.dirty.ratio."""
    bases = partition.segment_bases() if bases is None else bases
    return len(bases) >= 2 and \
        dirty_ratio(partition, bases) > config.get("min.cleanable.dirty.ratio")  # as Kafka: >


def compact(partition, config, now: int, force: bool = False, helper: bool = True) -> dict:
    """Compact the sealed segments if the dirty ratio calls for it (or ``force``).

    As Kafka's cleaner: the offset map is built from the first dirty offset on, within
    ``log.cleaner.dedupe.buffer.size`` bytes; the sealed segments from the log start to
    where the map ends are rewritten against it, and the first dirty offset moves there.
    More keys than fit: several passes, each going on where the last one's map ended.
    ``helper`` False: no helper process for the map (see ``_build_map``)."""
    bases = partition.segment_bases()
    ratio = dirty_ratio(partition, bases)
    result = {"dirty_ratio": round(ratio, 4), "ran": False, "records_removed": 0,
              "tombstones_removed": 0, "keyless_removed": 0, "segments_before": len(bases),
              "segments_after": len(bases), "bytes_before": 0, "bytes_after": 0, "passes": 0}
    if len(bases) < 2 or (not force and not ratio > config.get("min.cleanable.dirty.ratio")):
        _clear_failure(partition)  # (nothing to do is not a failure)
        return result
    result["ran"] = True
    horizon = now - config.get("delete.retention.ms")
    budget = config.get("log.cleaner.dedupe.buffer.size")
    end = bases[-1]  # the active segment's base: everything below it is sealed
    start = max(read_checkpoint(partition), bases[0])
    if start >= end:
        start = bases[0]  # forced with nothing dirty: clean all of it again
    counted: set[int] = set()
    parallel = helper
    while True:
        result["passes"] += 1
        omap = _build_map(partition, bases, start, end, budget, parallel)
        parallel = parallel and not omap.overflowed  # (many keys: a helper would be stopped again)
        upto = omap.upto
        for group, group_end in _groups(partition, bases, config.get("segment.bytes"),
                                        omap.estimate()):
            if group[0] >= upto:
                break
            before = sum(_size(partition.path, b) for b in group)
            first = group[0] not in counted
            counted.update(group)
            stats = _clean_group(partition, group, group_end, omap, horizon,
                                 config.get("index.interval.bytes"))
            if first:
                result["bytes_before"] += before
            for k in ("records_removed", "tombstones_removed", "keyless_removed"):
                result[k] += stats[k]
        del omap
        files.write_atomic(os.path.join(partition.path, files.CLEANER_CHECKPOINT_FILE),
                           json.dumps({"first_dirty_offset": upto}).encode() + b"\n")
        if upto >= end:
            break
        start = upto
        bases = partition.segment_bases()
    _clear_failure(partition)
    bases = partition.segment_bases()
    result["bytes_after"] = sum(_size(partition.path, b) for b in bases[:-1])
    result["segments_after"] = len(bases)
    result["dirty_ratio"] = round(dirty_ratio(partition), 4)
    return result


def _clean_group(partition, group: list[int], end: int, omap: _OffsetMap,
                 horizon: int, interval: int) -> dict:
    """Rewrite one group against the offset map (records at ``omap.upto`` and after are
    kept as they are: the map does not cover them), merging its segments into one; a
    lone segment that loses nothing is left as it is. Return what it removed.

    A batch of the map's range in the producer's keyed shape is not decoded at all
    unless it loses some records but not all: the sorted survivors say how many of its
    offsets stay (all: its bytes are copied; none: it goes; some: its kept records are
    encoded again by table lookups, at their own offset deltas). Other batches (before
    the map's range, or of another shape) are decoded and looked up key by key.

    Each kept batch keeps its base offset; the offsets removed after it are carried by
    its range (its lastOffsetDelta, changed in the header: the records' bytes stay), and
    those removed before the first kept batch of the group by an empty batch, so that
    offsets stay contiguous from batch to batch."""
    stats = {"records_removed": 0, "tombstones_removed": 0, "keyless_removed": 0, "bytes": 0}
    out = _SegmentBuilder(partition.path, group[0], interval)
    changed = len(group) > 1
    latest = omap.latest
    upto = omap.upto
    get = latest.get
    try:
        # the batch waiting to be written (its range ends where the next kept one begins):
        # (header, bytes, what to write instead of its bytes, or None for them as they are)
        pending: tuple | None = None
        max_ts = dropped_ts = rb.NO_TIMESTAMP

        def emit(p, range_end: int) -> None:
            nonlocal changed
            h, data, rewritten = p
            if rewritten is None:
                if range_end == h.last_offset:
                    out.add(data)  # kept whole: the very same bytes
                    return
                rewritten = rb.extend_range(data, range_end)
            elif range_end != h.last_offset:
                rewritten = rb.extend_range(rewritten, range_end)
            changed = True
            out.add(rewritten)

        for b in group:
            for h, data in _segment_raw_batches(partition, b):
                max_ts = max(max_ts, h.max_timestamp)
                keep: list | None = None
                rewritten = None
                if h.base_offset in omap.simple:  # (so within the map's range)
                    lo, hi = omap.kept(h.base_offset, h.next_offset)
                    if hi - lo != h.record_count:
                        stats["records_removed"] += h.record_count - (hi - lo)
                        keep = []
                        if hi > lo:  # some stay: decode it, keep those
                            kv: Any = rb.decode_keyed(data, 0, h)
                            rewritten = _encode_keyed(h, kv, omap.survivors[lo:hi])
                            keep = None if rewritten is not None else [
                                rb.Record(o, h.base_timestamp, kv[0][o - h.base_offset],
                                          kv[1][o - h.base_offset], ())
                                for o in omap.survivors[lo:hi]]
                elif h.base_offset < upto:
                    offsets, keys, values, recs = _batch_keys(partition.path, h, data, False)
                    if recs is None:
                        # keys and values all there: only superseded records go
                        gone = list(map(gt, map(get, keys, offsets), offsets))  # type: ignore[arg-type]
                        n_gone = sum(gone)
                        if n_gone:
                            stats["records_removed"] += n_gone
                            keep = []
                            if n_gone < len(gone):  # some stay: their values are needed
                                kv = rb.decode_keyed(data, 0, h)
                                rewritten = _encode_keyed(h, kv, [o for o, g in zip(offsets, gone) if not g])
                                keep = None if rewritten is not None else [
                                    rb.Record(o, h.base_timestamp, k, v, ()) for o, k, v, g
                                    in zip(offsets, kv[0], kv[1], gone) if not g]
                    else:
                        kept = []
                        for r in recs:
                            why = _drops(r, latest, horizon)
                            if why is None:
                                kept.append(r)
                            else:
                                stats[why] += 1
                        if len(kept) != len(recs):
                            keep = kept
                if keep is not None:
                    if not keep and rewritten is None:
                        changed = True
                        dropped_ts = max(dropped_ts, h.max_timestamp)
                        continue  # every record of it goes
                    rewritten = _encode(keep, h.base_offset, h.last_offset,
                                        h.attributes & rb.COMPRESSION_MASK)
                if pending is not None:
                    emit(pending, h.base_offset - 1)
                elif h.base_offset > group[0]:
                    # the group's first records are gone: an empty batch carries their offsets
                    changed = True
                    out.add(rb.encode_compacted([], group[0], h.base_offset - 1, dropped_ts))
                pending = (h, data, rewritten)
        if not changed and pending is not None and pending[2] is None \
                and pending[0].last_offset == end - 1:
            out.abort()  # a lone segment that loses nothing: left as it is
            stats["bytes"] = _size(partition.path, group[0])
            return stats
        if pending is None:
            out.add(rb.encode_compacted([], group[0], end - 1, max_ts))
        else:
            emit(pending, end - 1)
        out.finish()
    except BaseException:
        out.abort()
        raise
    stats["bytes"] = out.size
    marker = {"base": group[0], "end": end, "replaces": group[1:]}
    marker_path = os.path.join(partition.path, files.segment_name(group[0], files.CLEAN_MARKER_SUFFIX))
    files.write_atomic(marker_path, json.dumps(marker).encode() + b"\n")
    _finish_swap(partition.path, marker_path, marker)
    return stats


def _encode_keyed(h: rb.BatchHeader, kv, offsets: list[int]) -> bytearray | None:
    """The records at ``offsets`` of a keyed batch (``kv``: its keys and values), at their
    own offset deltas, in a batch of ``h``'s range; None if the bulk encoder cannot."""
    if h.attributes & rb.COMPRESSION_MASK:
        return None  # (decode_keyed never takes those; the general path compresses)
    base = h.base_offset
    deltas = [o - base for o in offsets]
    keys, values = kv
    return rb.encode_keyed_compacted(_pick(keys, deltas), _pick(values, deltas), deltas,
                                     h.base_timestamp, base, h.last_offset)


def _pick(items: list, indexes: list[int]) -> list:
    return [items[indexes[0]]] if len(indexes) == 1 else list(itemgetter(*indexes)(items))


def _encode(records: list, base_offset: int, last_offset: int, codec: int) -> bytearray:
    """A cleaned batch, compressed with the codec of the batch its records came from."""
    batch = rb.encode_compacted(records, base_offset, last_offset)
    return rb.compress_batch(batch, codec) if codec else batch


def _drops(r: rb.Record, latest: dict, horizon: int) -> str | None:
    """Why compaction drops this record (a stats key), or None to keep it. Records the
    map does not cover (``latest`` has no later offset for their key) keep their place;
    a tombstone goes once it is the latest of its key and past the horizon."""
    if r.key is None:
        return "keyless_removed"
    if latest.get(r.key, r.offset) > r.offset:
        return "records_removed"
    if r.value is None and r.timestamp < horizon:
        return "tombstones_removed"
    return None


# ---------------------------------------------------------------- entry points

def _current_config(partition) -> TopicConfig:
    """The topic's configuration as it is on disk now (``topic alter`` may have changed it
    since the partition was opened)."""
    try:
        return TopicConfig(read_topic_meta(partition.root, partition.topic)[1])
    except FslogError:
        return partition.config


def clean_lock(partition) -> BlockingLock:
    """The partition's cleaner lock (blocking), for ``with``."""
    return BlockingLock(os.path.join(partition.path, files.CLEANER_LOCK_FILE))


def clean_partition(partition, now: int | None = None, wait: bool = True,
                    force_compaction: bool = False) -> dict | None:
    """Retention and/or compaction, as the topic's cleanup.policy says. Returns a summary,
    or None if ``wait`` is False and another process is cleaning this partition."""
    now = now_ms() if now is None else now
    path = os.path.join(partition.path, files.CLEANER_LOCK_FILE)
    if not os.path.isdir(partition.path):
        return _summary(partition, [], None, [])
    if wait:
        lock = clean_lock(partition)
        lock.acquire()
        release = lock.release
    else:
        plock = ProcessLock(path)
        if not plock.try_acquire():
            return None
        release = plock.release
    try:
        recovered = recover(partition)
        config = _current_config(partition)
        policy = str(config.get("cleanup.policy"))
        deleted = apply_retention(partition, config, now) if "delete" in policy else []
        compaction = compact(partition, config, now, force_compaction) if config.compacted else None
        return _summary(partition, deleted, compaction, recovered, policy)
    finally:
        release()


def _summary(partition, deleted, compaction, recovered, policy: str = "") -> dict:
    return {"topic": partition.topic, "partition": partition.number, "cleanup_policy": policy,
            "start_offset": partition.start_offset(),
            "segments_deleted": deleted,
            "bytes_deleted": sum(d["size_bytes"] for d in deleted),
            "offsets_deleted": sum(d["end_offset"] - d["base_offset"] for d in deleted),
            "compaction": compaction, "recovered": recovered}


# Background compactions started by this process, with their partition directories (reaped
# at the next roll: one killed by a signal is recorded in cleaner-error.json).
_BACKGROUND: list = []


def clean_after_roll(partition) -> None:
    """The roll hook a ``Topic`` installs on its partitions: after a producer rolls a
    segment, clean unless another process is at it. Retention runs here (it looks at file
    sizes and one time index: cheap); compaction, when the dirty ratio calls for it, runs
    in a background process (``_spawn_compaction``) that inherits the cleaner lock taken
    here, so the producer never waits for it and no other clean can
    slip in between. A failure here raises; the partition keeps it in ``clean_errors``
    (the append is done and acknowledged) for the caller to report. A failure of the
    background compaction is kept in ``cleaner-error.json`` (``background_failure``),
    which ``fslog status``, ``fslog verify`` and ``fslog produce`` report until a
    compaction of the partition succeeds. Within ``log.cleaner.backoff.ms`` of the
    partition's last compaction a roll puts it off (``partition.clean_deferred``): the
    partition's ``close`` calls this once more, with ``partition.closing`` set, and then
    it runs whatever the backoff."""
    plock = ProcessLock(os.path.join(partition.path, files.CLEANER_LOCK_FILE))
    if not plock.try_acquire():
        # another process cleans (a compaction an earlier roll started, say): what this
        # roll sealed is left to the next one, or to the close, which leaves a compaction
        # waiting for that clean to end
        if partition.closing:
            if _current_config(partition).compacted:
                _spawn_compaction(partition, None)
        elif partition.config.compacted:
            partition.clean_deferred = True
        return
    handed = False
    try:
        recover(partition)
        config = _current_config(partition)
        if "delete" in str(config.get("cleanup.policy")):
            apply_retention(partition, config, now_ms())
        if config.compacted and compaction_due(partition, config):
            partition.clean_deferred = not partition.closing and _backing_off(partition, config)
            if not partition.clean_deferred:
                handed = _spawn_compaction(partition, plock.fd)
                if not handed:
                    compact(partition, config, now_ms(), helper=False)
    finally:
        if handed:
            os.close(plock.fd)  # (no unlock: the child's copy of the descriptor holds it)
            plock.fd = -1
        else:
            plock.release()


def _backing_off(partition, config) -> bool:
    """Did the partition's last compaction end less than ``log.cleaner.backoff.ms`` ago
    (the time its checkpoint was written)? Then a roll puts the next one off."""
    backoff = config.get("log.cleaner.backoff.ms")
    if backoff <= 0:
        return False
    try:
        written = os.stat(os.path.join(partition.path, files.CLEANER_CHECKPOINT_FILE)).st_mtime_ns
    except OSError:
        return False  # never compacted (or unreadable: compaction rewrites it)
    import time
    return 0 <= time.time_ns() - written < backoff * 1_000_000


def _spawn_compaction(partition, lock_fd: int | None) -> bool:
    """Start the background compaction of this partition, handing it the cleaner lock (an
    flock belongs to the open file, which the child inherits; ``lock_fd`` None: the child
    waits for the lock itself, then compacts if it is still due). A single-threaded process
    forks (``_fork_compaction``: the child has fslog loaded already, so it starts at once);
    one with threads (a forked copy of it could inherit a lock held by another thread)
    starts ``python -m fslog.storage.cleaner``. False if neither can be started (then the
    caller compacts inline)."""
    import subprocess
    import sys
    import threading
    _reap()
    how = os.environ.get("FSLOG_CLEANER", "")
    if how == "inline":
        return False
    if how != "exec" and threading.active_count() == 1:
        child: Any = _fork_compaction(partition, lock_fd)
        if child is not None:
            _BACKGROUND.append((child, partition.path))
            return True
    if not sys.executable:
        return False
    lock_args = ["--wait"] if lock_fd is None else ["--lock-fd", str(lock_fd)]
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "fslog.storage.cleaner", *lock_args,
             partition.root, partition.topic, str(partition.number)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=() if lock_fd is None else (lock_fd,), start_new_session=True,
            close_fds=True)
    except OSError:
        return False
    _BACKGROUND.append((child, partition.path))
    return True


class _Forked:
    """A forked background compaction, as ``_reap`` sees it (``pid``, ``poll()``, and
    ``returncode``: negative for a signal, as subprocess has it)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # (reaped by someone else: its end is unknown)
                self.returncode = 0
                return 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def _fork_compaction(partition, lock_fd: int | None) -> _Forked | None:
    """Fork a child that compacts the partition and exits (``_background``), or None if
    fork fails. The child is detached (its own session, stdin/stdout/stderr on
    /dev/null) and keeps only the cleaner lock of the descriptors it inherits: neither a
    pipe of the producer's nor one of its lock files stays open after the producer is
    done. It touches no object of the producer's (it opens the partition anew, the
    garbage collector is off so that nothing of the producer's is finalized) and leaves
    by ``os._exit``: the producer's buffers are neither flushed nor closed by it."""
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid:
        return _Forked(pid)
    code = 1
    try:
        import gc
        import signal
        gc.disable()
        os.setsid()
        if lock_fd is not None and lock_fd < 3:  # (a producer started without a stdin, say)
            import fcntl
            lock_fd = fcntl.fcntl(lock_fd, fcntl.F_DUPFD, 3)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        top = max(4, os.sysconf("SC_OPEN_MAX"))
        if lock_fd is None:
            os.closerange(3, top)
        else:
            os.closerange(3, lock_fd)
            os.closerange(lock_fd + 1, max(lock_fd + 1, top))
        code = _background(partition.root, partition.topic, partition.number, lock_fd)
    finally:
        os._exit(code)


def _reap() -> None:
    """Forget background compactions that ended; one killed by a signal (the OOM killer,
    say) could not say why: record that it died."""
    for entry in list(_BACKGROUND):
        child, directory = entry
        if child.poll() is None:
            continue
        _BACKGROUND.remove(entry)
        if child.returncode < 0:
            _record_failure(directory, f"the cleaner process (pid {child.pid}) was killed by "
                                       f"signal {-child.returncode}")


def wait_for_background(partition) -> None:
    """Return once no clean of ``partition`` runs (a background compaction started by a
    roll holds the cleaner lock until it is done)."""
    with clean_lock(partition):
        pass


# The background compaction runs this much nicer than the producer that started it: on
# a busy machine the producer keeps its share of the CPU and the compaction takes what is
# left (as Kafka's cleaner threads are throttled so as not to slow the brokers' appends).
BACKGROUND_NICE = 10


def _background(root: str, topic: str, number: int, lock_fd: int | None,
                say: bool = False) -> int:
    """The background compaction of one partition, with the cleaner lock already held
    through descriptor ``lock_fd`` (closed at the end), or, ``lock_fd`` None, once this
    process has waited for the lock (a compaction put off to a producer's close while
    another clean ran); compacts if it is due. A failure is recorded in
    ``cleaner-error.json`` (and, ``say``, said on stderr); returns the exit status."""
    from .partition import Partition
    directory = files.partition_dir(root, topic, number)
    try:
        os.nice(BACKGROUND_NICE)
    except OSError:
        pass
    lock: BlockingLock | None = None
    try:
        partition = Partition(root, topic, number, TopicConfig(read_topic_meta(root, topic)[1]))
        directory = partition.path
        if lock_fd is None:
            lock = clean_lock(partition)
            lock.acquire()
            try:  # (the topic deleted, or deleted and made anew, while this waited: not ours)
                if os.fstat(lock._fd).st_ino != os.stat(lock.path).st_ino:
                    return 0
            except OSError:
                return 0
            recover(partition)
        config = _current_config(partition)
        if config.compacted:
            # alone: the producer that started it has the other core
            compact(partition, config, now_ms(), helper=False)
        return 0
    except Exception as e:  # noqa: BLE001 (whatever it was, it must not vanish)
        import sys
        why = str(e) if isinstance(e, (FslogError, OSError)) else f"{type(e).__name__}: {e}"
        if os.path.isdir(directory):
            _record_failure(directory, why)  # for status, verify and the next produce
        if say:
            print(f"fslog: background compaction of {topic}/{number}: {why}", file=sys.stderr)
        return 1
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
        elif lock is not None:
            lock.release()


def _main(argv: list[str]) -> int:
    """``python -m fslog.storage.cleaner (--lock-fd N | --wait) ROOT TOPIC PARTITION``: the
    background compaction started by a process with threads (``_spawn_compaction``)."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m fslog.storage.cleaner")
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--lock-fd", type=int, help="the cleaner lock, held through this descriptor")
    how.add_argument("--wait", action="store_true", help="wait for the cleaner lock")
    ap.add_argument("root")
    ap.add_argument("topic")
    ap.add_argument("partition", type=int)
    args = ap.parse_args(argv)
    return _background(args.root, args.topic, args.partition, args.lock_fd, say=True)


if __name__ == "__main__":
    import sys
    sys.exit(_main(sys.argv[1:]))
