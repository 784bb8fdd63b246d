"""The follower side of a partition: appends at the leader's offsets, truncation, the log
start offset and sealed segments kept in line with the leader's; the root's follower role.

A follower's log is a copy of its leader's: the same batches, byte for byte, at the same
offsets, in segments that roll exactly where the leader's did, so a sealed segment is
identical (``cmp``) on both sides. ``ReplicaPartition`` is a ``Partition`` whose appends
take their offsets from the batches (Kafka's follower append) instead of assigning them:

- ``follower_append(data, leader_bases)``: whole batches (CRC-checked), the first starting
  at the local log-end offset and each continuing the one before — anything else is
  refused (``ReplicationError``), never written. A new segment begins where the leader's
  segment base offsets say (``leader_bases``), not where local ``segment.bytes`` would
  roll; without them (a leader that does not say) the local config decides. Batches of a
  newer leader epoch are noted in the leader-epoch checkpoint. Not durable until
  ``sync()``: a follower fsyncs before it fetches further or reports its position, so its
  next fetch offset is its durable position.
- ``truncate_to(offset)``: drop everything from ``offset`` on (whole batches: the batch
  holding ``offset`` goes too), for a log that diverged from the leader's.
- ``start_at(offset)``: drop the whole log and start empty at ``offset`` (the leader's log
  start is past everything this log holds).
- ``advance_start(offset)``: delete whole segments below the leader's log start offset
  (retention on the leader).
- ``install_segment(base, end, source)``: replace the local segments covering
  [base, end) by a copy of the leader's sealed segment (compaction on the leader),
  through the cleaner's crash-safe swap (``cleaner.py``): readers never miss or repeat a
  record, and a kill -9 leaves the old segments or the new one.

The follower is the only writer: it holds the partition lock for each change (as a
producer would), and the cleaner lock for segment deletions and swaps. Not thread-safe.

The root's role: ``ROOT/follower.json`` exists while the root follows another root (it
names the leader and what was copied); ``Partition.append`` refuses to write there
(``NotLeaderError``). ``promote(root)`` makes a follower root a leader: a new leader epoch
on every partition, then the marker goes. ``ROOT/replicate.lock`` is held by the running
``fslog replicate``; promotion refuses while it is held.
"""

from __future__ import annotations

import json
import os
import time

from ..errors import CorruptRecordError, FslogError, ReplicationError
from ..records import batch as rb
from . import files, leader_epoch
from .locks import ProcessLock, is_locked_by_someone, read_holder
from .partition import Partition
from .segment import SegmentReader, SegmentWriter

_SUFFIXES = (files.LOG_SUFFIX, files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX)


class ReplicaPartition(Partition):
    """A partition written by a follower (see the module docstring)."""

    # ------------------------------------------------------------ appends
    def follower_append(self, data, leader_bases=None) -> int:
        """Append whole batches at their own offsets; return the new log-end offset."""
        view = memoryview(data)
        n = len(view)
        try:
            with self._lock:
                return self._follower_append_locked(view, n, leader_bases)
        except OSError as e:
            raise self._io_error("append to", e) from None

    def _follower_append_locked(self, view, n: int, leader_bases) -> int:
        first = rb.read_header(view, 0) if n >= rb.HEADER_SIZE else None
        if self._writer is None and not self.segment_bases():
            if first is None:
                return 0
            self.start_at(first.base_offset)  # an empty follower starts at the leader's offsets
        w = self._active()
        roll_at = set(leader_bases) if leader_bases is not None else None
        nxt = w.next_offset
        chunk_start = 0
        heads: list[tuple[int, rb.BatchHeader]] = []
        epochs: list[tuple[int, int]] = []
        pos = 0
        while pos < n:
            try:
                h = rb.check_batch(view, pos, n, f"{self.topic}/{self.number} (from the leader)")
            except rb.Incomplete:
                raise ReplicationError(
                    f"{self.topic}/{self.number}: the data from the leader ends in the middle "
                    f"of a batch at offset {nxt}; nothing from there on was written") from None
            except CorruptRecordError as e:
                raise ReplicationError(f"{e}; nothing from there on was written") from None
            if h.base_offset != nxt:
                raise ReplicationError(
                    f"{self.topic}/{self.number}: the leader's batch starts at offset "
                    f"{h.base_offset}, but this log ends at {nxt}: the logs diverged (or the "
                    f"follower skipped data); nothing from there on was written")
            if roll_at is not None:
                roll = h.base_offset in roll_at and h.base_offset != w.base_offset
            else:
                roll = self._should_roll(w, w.size + pos - chunk_start, h.size, h.max_timestamp)
            if roll and (w.size or pos > chunk_start):
                if pos > chunk_start:
                    w.append(view[chunk_start:pos], heads)
                    chunk_start, heads = pos, []
                w = self._roll(w)
                self._rolled = False  # a follower does not clean on its own: it follows
            heads.append((pos - chunk_start, h))
            epochs.append((h.leader_epoch, h.base_offset))
            nxt = h.next_offset
            pos += h.size
        if pos > chunk_start:
            w.append(view[chunk_start:pos], heads)
        latest: int | None = None
        for epoch, start in epochs:
            if latest is None:
                latest = self._latest_epoch()
            if epoch > latest:
                leader_epoch.assign(self, epoch, start)
                latest = epoch
        return nxt

    _epoch_seen: tuple[tuple[int, int, int], int] | None = None

    def _latest_epoch(self) -> int:
        """The latest epoch in the leader-epoch checkpoint (-1: none). The file is read
        again only when a stat says it changed (every write of it is a new file renamed
        over the old one: a new inode), not on every append."""
        path = leader_epoch.checkpoint_path(self)
        try:
            st = os.stat(path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = (0, 0, -1)
        seen = self._epoch_seen
        if seen is not None and seen[0] == key:
            return seen[1]
        entries = leader_epoch.read_entries(path)
        latest = entries[-1][0] if entries else -1
        self._epoch_seen = (key, latest)
        return latest

    def sync_found(self, segments: int = 2) -> None:
        """fsync the newest ``segments`` segments as found on disk. A follower killed -9
        may have left appended bytes that were never fsynced (in the page cache, read back
        by the next process); its first fetch reports its log end as durable, so they are
        made durable first."""
        for base in self.segment_bases()[-segments:]:
            try:
                fd = os.open(os.path.join(self.path, files.segment_name(base)),
                             os.O_RDONLY | os.O_NOFOLLOW)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # ------------------------------------------------------------ truncation
    def truncate_to(self, offset: int) -> dict:
        """Drop every batch that holds an offset >= ``offset``. Returns what went:
        {"from_offset", "to_offset", "records", "bytes"} (the new log-end offset is
        "to_offset"; it may be below ``offset`` when ``offset`` falls inside a batch)."""
        with self._lock:
            if self._writer is not None:
                self._retire(self._writer)
                self._writer = None
            self.sync()
            bases = self.segment_bases()
            old_end = self.end_offset()
            if not bases or offset >= old_end:
                return {"from_offset": old_end, "to_offset": old_end, "records": 0, "bytes": 0}
            if offset <= bases[0]:
                records, size = self._count_from(bases, bases[0], 0)
                self.start_at(offset)
                return {"from_offset": old_end, "to_offset": self.end_offset(),
                        "records": records, "bytes": size}
            keep = max(b for b in bases if b < offset)
            seg = SegmentReader(self.path, keep)
            try:
                cut = seg.position_for(offset)
            finally:
                seg.close()
            records, size = self._count_from(bases, keep, cut)
            for b in reversed(bases):
                if b > keep:
                    self._delete_segment(b)
            log_path = os.path.join(self.path, files.segment_name(keep))
            fd = os.open(log_path, os.O_RDWR | os.O_NOFOLLOW)
            try:
                os.ftruncate(fd, cut)
                os.fsync(fd)
            finally:
                os.close(fd)
            w = SegmentWriter(self.path, keep, self.config.index_interval_bytes)
            w.rebuild_indexes()
            self._writer = w
            files.fsync_dir(self.path)
            new_end = w.next_offset
            leader_epoch.truncate_from_end(self, new_end)
            return {"from_offset": old_end, "to_offset": new_end, "records": records,
                    "bytes": size}

    def _count_from(self, bases: list[int], base: int, pos: int) -> tuple[int, int]:
        """Records and bytes from position ``pos`` of segment ``base`` to the log end."""
        records = size = 0
        for b in bases:
            if b < base:
                continue
            seg = SegmentReader(self.path, b)
            try:
                for _p, h, data in seg.batches(pos if b == base else 0):
                    records += h.record_count
                    size += len(data)
            finally:
                seg.close()
        return records, size

    def _delete_segment(self, base: int) -> None:
        for suffix in _SUFFIXES:  # the .log first: with it the segment is gone
            try:
                os.unlink(os.path.join(self.path, files.segment_name(base, suffix)))
            except FileNotFoundError:
                pass

    def start_at(self, offset: int) -> None:
        """Drop the whole log; start it empty at ``offset`` (Kafka's truncateFullyAndStartAt)."""
        self.create_dir()
        with self._lock:
            if self._writer is not None:
                self._retire(self._writer)
                self._writer = None
            self.sync()
            for b in reversed(self.segment_bases()):
                self._delete_segment(b)
            w = SegmentWriter(self.path, offset, self.config.index_interval_bytes)
            self._writer = w
            files.fsync_dir(self.path)
            leader_epoch.clear(self)

    # ------------------------------------------------------------ the leader's log start
    def advance_start(self, leader_start: int) -> list[int]:
        """Delete local segments that end at or before ``leader_start`` (the leader's log
        start offset); start over at it if it is past this log's end. Returns the base
        offsets of the segments deleted."""
        from .cleaner import clean_lock
        bases = self.segment_bases()
        if not bases or bases[0] >= leader_start:
            return []
        if self.end_offset() <= leader_start and not (len(bases) == 1 and bases[0] == leader_start):
            self.start_at(leader_start)
            return bases
        deleted = []
        with clean_lock(self), self._lock:
            bases = self.segment_bases()
            for i, b in enumerate(bases[:-1]):
                if bases[i + 1] > leader_start:
                    break
                self._delete_segment(b)
                deleted.append(b)
            if deleted:
                files.fsync_dir(self.path)
                leader_epoch.truncate_from_start(self, self.start_offset())
        return deleted

    # ------------------------------------------------------------ the leader's compaction
    def install_segment(self, base: int, end: int, source_path: str) -> bool:
        """Replace the local segments covering [base, end) by a copy of the leader's
        sealed segment at ``source_path`` (its batches must cover exactly [base, end)).
        Returns False, changing nothing, when the source no longer has that shape (the
        leader changed it meanwhile: look again) or the local segment boundaries do not
        allow a swap (a local segment runs past ``end``)."""
        from .cleaner import _finish_swap, _SegmentBuilder, clean_lock
        with clean_lock(self), self._lock:
            bases = self.segment_bases()
            inside = [b for b in bases if base <= b < end]
            after = [b for b in bases if b >= end]
            if not inside or inside[0] != base:
                return False
            if not after and self.end_offset() > end:
                return False  # the last local segment runs past the leader's segment
            builder = _SegmentBuilder(self.path, base, self.config.index_interval_bytes)
            try:
                ok = self._copy_segment(source_path, base, end, builder)
                if ok:
                    builder.finish()
                else:
                    builder.abort()
            except BaseException:
                builder.abort()
                raise
            if not ok:
                return False
            if self._writer is not None:
                self._retire(self._writer)
                self._writer = None
            self.sync()
            marker = {"base": base, "end": end, "replaces": inside[1:]}
            marker_path = os.path.join(self.path, files.segment_name(base, files.CLEAN_MARKER_SUFFIX))
            files.write_atomic(marker_path, json.dumps(marker).encode() + b"\n")
            _finish_swap(self.path, marker_path, marker)
            return True

    @staticmethod
    def _copy_segment(source_path: str, base: int, end: int, builder) -> bool:
        try:
            fd = os.open(source_path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0) if size else b""
        finally:
            os.close(fd)
        pos = 0
        nxt = base
        while pos < len(data):
            try:
                h = rb.check_batch(data, pos, len(data), source_path)
            except (rb.Incomplete, CorruptRecordError):
                return False
            if h.base_offset != nxt:
                return False
            builder.add(bytearray(data[pos:pos + h.size]))
            nxt = h.next_offset
            pos += h.size
        return nxt == end


# ---------------------------------------------------------------- the root's role

def follower_marker_path(root: str) -> str:
    return files.follower_file(root)


def read_follower_state(root: str) -> dict | None:
    """``ROOT/follower.json`` (what this root follows and what it copied), or None."""
    path = follower_marker_path(root)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            state = json.loads(f.read())
            if not isinstance(state, dict):
                raise ValueError("not an object")
            return state
        except ValueError:
            return {"leader": None, "damaged": True}


def write_follower_state(root: str, state: dict) -> None:
    files.write_atomic(follower_marker_path(root),
                       json.dumps(state, indent=1, sort_keys=True).encode() + b"\n")


def replicate_lock(root: str) -> ProcessLock:
    return ProcessLock(os.path.join(root, files.REPLICATE_LOCK_FILE))


def running_follower(root: str) -> str | None:
    """Who runs ``fslog replicate`` on this root (the lock holder's note), or None."""
    path = os.path.join(root, files.REPLICATE_LOCK_FILE)
    if not is_locked_by_someone(path):
        return None
    return read_holder(path) or "another process"


def promote(root: str) -> list[dict]:
    """Make a follower root a leader: a new leader epoch on every partition (so that the
    old leader, following this root later, truncates what it wrote that was never copied
    here), then remove ``follower.json``. A root that is no follower is left as it is
    (returns []). Refuses while ``fslog replicate`` runs on the root.

    ``fslog promote`` calls it; ``fslog serve`` calls it when it starts on a follower root
    (Kafka's leader election, made explicit). Returns one {"topic", "partition",
    "epoch", "start_offset"} per partition."""
    if read_follower_state(root) is None:
        return []
    lock = replicate_lock(root)
    if not lock.try_acquire():
        who = running_follower(root) or "another process"
        raise FslogError(f"{root}: 'fslog replicate' is still running on this root ({who}): "
                         f"stop it first, then promote")
    try:
        out = begin_leader_epochs(root)
        os.unlink(follower_marker_path(root))
        files.fsync_dir(root)
        return out
    finally:
        lock.release()


def begin_leader_epochs(root: str) -> list[dict]:
    """A new leader epoch on every partition of the root, from its log-end offset
    (``leader_epoch.begin_leadership``). ``promote`` calls it, and ``fslog serve`` on
    every start as a leader: a leader restarted after a crash may have lost records a
    follower had already copied (appended, not yet fsynced here); what it writes from now
    on carries the new epoch, so that follower, asking where its epoch ended here
    (OffsetForLeaderEpoch), truncates exactly what this log lost and never keeps a tail
    that differs from the leader's. Returns one {"topic", "partition", "epoch",
    "start_offset"} per partition."""
    from .topic import Topic
    out = []
    tdir = files.topics_dir(root)
    names = sorted(os.listdir(tdir)) if os.path.isdir(tdir) else []
    for name in names:
        try:
            topic = Topic(root, name)
        except FslogError:
            continue
        for p in topic.partitions():
            if not os.path.isdir(p.path):
                continue
            epoch = leader_epoch.begin_leadership(p)
            out.append({"topic": name, "partition": p.number, "epoch": epoch,
                        "start_offset": p.end_offset()})
    return out


def now_ms() -> int:
    return int(time.time() * 1000)
