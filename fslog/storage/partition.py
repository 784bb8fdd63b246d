"""A partition: a directory of segments in offset order, its writer lock, appends and rolls.

Appending is serialized across processes by the partition's lock file (``.lock``, a
blocking flock: ``locks.py``). Under the lock the writer looks at the directory again (another
process may have appended or rolled since), recovers the active segment's tail if it
changed behind its back, assigns offsets, writes whole batches and extends the indexes.
Offsets are therefore dense and unique however many producers share the partition.

Every appended batch is stamped with the partition's current leader epoch
(``leader_epoch.py``; 0 until a root first takes over as leader). A root that follows
another (``ROOT/follower.json``, written by ``fslog replicate``) refuses these appends:
its log is the leader's copy; followers append through ``replica.py`` instead.

Reading needs no lock: see ``reader.py``. A ``Partition`` object is not thread-safe; the
producer serializes its use.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Callable

from ..config import TopicConfig
from ..errors import FslogError, NotLeaderError, RecordTooLargeError
from ..records import batch as rb
from . import files
from .leader_epoch import EpochStamp
from .locks import BlockingLock
from .segment import SegmentReader, SegmentWriter

_SETTLED_NS = 1_000_000_000  # a directory listing is reused once its mtime is this old


class Partition:
    def __init__(self, root: str, topic: str, number: int, config: TopicConfig,
                 on_roll: Callable[[Partition], None] | None = None):
        self.root = root
        self.topic = topic
        self.number = number
        self.config = config
        self.path = files.partition_dir(root, topic, number)
        if os.path.lexists(self.path):
            files.check_real_dir(self.path, root)  # never follow a link out of the root
        self._lock = BlockingLock(os.path.join(self.path, files.LOCK_FILE))
        self._epoch = EpochStamp(self)
        self._follower_marker = files.follower_file(root)
        self._writer: SegmentWriter | None = None
        # the last directory listing worth reusing: ((inode, mtime_ns), base offsets)
        self._listing: tuple[tuple[int, int], tuple[int, ...]] | None = None
        self._unsynced: list[int] = []  # fds of segments written and not yet fsynced
        self._rolled = False  # a roll happened: run ``on_roll`` after the append
        # Called (outside the lock) after an append that rolled a segment: the topic
        # installs the cleaner here (retention, compaction without a daemon).
        self.on_roll = on_roll
        # Failures of ``on_roll`` (the append itself succeeded): the CLI reports them.
        self.clean_errors: list[Exception] = []
        # ``on_roll`` put a compaction off (log.cleaner.backoff.ms): ``close`` calls it once
        # more, with ``closing`` set, so that what this writer appended gets compacted.
        self.clean_deferred = False
        self.closing = False
        # Torn tails this object's writers truncated (dicts: path, position, bytes, offset):
        # the CLI reports them, so that data loss is never silent.
        self.repairs: list[dict] = []

    def __repr__(self) -> str:
        return f"Partition({self.topic!r}, {self.number})"

    # ------------------------------------------------------------ layout
    def segment_bases(self) -> list[int]:
        """Base offsets of the segments, oldest first.

        One stat of the directory instead of a listing when nothing was created, removed
        or renamed in it since the last listing: its (inode, mtime) are unchanged, and
        that listing was taken when the mtime was already ``_SETTLED_NS`` old (mtimes
        have the kernel's coarse clock: two changes in one tick would leave one mtime, so
        a listing right after a change is never trusted for the next call)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._listing = None
            return []
        key = (st.st_ino, st.st_mtime_ns)
        got = self._listing
        if got is not None and got[0] == key:
            return list(got[1])
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            self._listing = None
            return []
        bases = [b for b in map(files.parse_segment_name, names) if b is not None]
        bases.sort()
        self._listing = (key, tuple(bases)) \
            if time.time_ns() - st.st_mtime_ns > _SETTLED_NS else None
        return bases

    def create_dir(self) -> None:
        """Make the partition's directory (topic creation, and replication of a partition
        a follower does not have yet); producers never do: see ``check_dir``."""
        if files.makedirs(self.path):
            files.fsync_dir(os.path.dirname(self.path))
        files.check_real_dir(self.path, self.root)

    def check_dir(self) -> None:
        """The partition's directory must be there: topic creation makes every one, so a
        missing one was removed by hand (or the topic was deleted meanwhile). It is never
        made again silently: offsets would restart at 0 under readers and groups."""
        if not os.path.isdir(self.path):
            if not os.path.isfile(os.path.join(os.path.dirname(self.path), files.TOPIC_CONFIG_FILE)):
                raise FslogError(f"topic {self.topic!r} was deleted meanwhile ({self.path} is "
                                 f"gone); nothing was written")
            raise FslogError(
                f"{self.path}: the directory of partition {self.topic}/{self.number} is missing "
                f"(removed by hand?); its records and offsets are gone, and fslog will not "
                f"silently start it again at offset 0: restore it from a copy, or create the "
                f"empty directory to start it again from 0")
        files.check_real_dir(self.path, self.root)

    # ------------------------------------------------------------ inspection (no lock)
    def start_offset(self) -> int:
        """Kafka's log start offset: the base offset of the oldest segment."""
        bases = self.segment_bases()
        return bases[0] if bases else 0

    def end_offset(self) -> int:
        """Kafka's log-end offset: the offset the next appended record will get."""
        bases = self.segment_bases()
        if not bases:
            return 0
        seg = SegmentReader(self.path, bases[-1])
        try:
            return seg.next_offset()
        finally:
            seg.close()

    def size_bytes(self) -> int:
        total = 0
        for b in self.segment_bases():
            try:
                total += os.stat(os.path.join(self.path, files.segment_name(b))).st_size
            except FileNotFoundError:
                pass
        return total

    # ------------------------------------------------------------ appends (under the lock)
    def _active(self) -> SegmentWriter:
        """The active segment's writer, reopened if another process changed the log."""
        bases = self.segment_bases()
        w = self._writer
        if w is not None:
            if bases and bases[-1] == w.base_offset:
                st = os.fstat(w.fd)
                if st.st_size == w.size and st.st_nlink > 0:
                    return w
            self._retire(w)
            self._writer = None
        if not bases:
            self.check_dir()
            base = 0
            created = True
        else:
            base = bases[-1]
            created = False
        w = SegmentWriter(self.path, base, self.config.index_interval_bytes)
        if created:
            files.fsync_dir(self.path)
        if w.truncated_bytes:
            self.repairs.append({"topic": self.topic, "partition": self.number, "path": w.path,
                                 "position": w.truncated_at, "bytes": w.truncated_bytes,
                                 "offset": w.next_offset})
        self._writer = w
        return w

    def _retire(self, w: SegmentWriter) -> None:
        """Close a writer, keeping its data fd until the next sync."""
        self._unsynced.append(os.dup(w.fd))
        w.close()

    def _should_roll(self, w: SegmentWriter, size: int, incoming: int, incoming_ts: int) -> bool:
        """Roll before a batch of ``incoming`` bytes when the segment (``size`` bytes so far)
        would grow past segment.bytes, or (as Kafka, KIP-33) when the batch's timestamp
        ``incoming_ts`` is segment.ms or more past the segment's first record's: records
        with old timestamps (a backfill) do not make every batch a segment of its own."""
        if size == 0:
            return False
        if size + incoming > self.config.segment_bytes:
            return True
        return w.first_timestamp is not None and \
            incoming_ts - w.first_timestamp >= self.config.segment_ms

    def _roll(self, w: SegmentWriter) -> SegmentWriter:
        w.seal()
        base = w.next_offset
        self._retire(w)
        nw = SegmentWriter(self.path, base, self.config.index_interval_bytes)
        files.fsync_dir(self.path)
        self._writer = nw
        self._rolled = True
        return nw

    def append(self, batches: list[bytearray]) -> list[tuple[int, int]]:
        """Append encoded batches; return (first offset, last offset) of each.

        Each batch is written whole; base offsets are assigned here. The data is visible
        to readers on return, and durable after ``sync()``.
        """
        limit = self.config.max_message_bytes
        for b in batches:
            if len(b) > limit:
                raise RecordTooLargeError(
                    f"a batch of {len(b)} bytes exceeds max.message.bytes={limit} of topic "
                    f"{self.topic!r}; raise it with --config max.message.bytes=N")
        out: list[tuple[int, int]] = []
        if self._writer is None:
            self.check_dir()  # (before its lock file is opened in it)
        try:
            self._append_locked(batches, out)
        except OSError as e:
            raise self._io_error("append to", e) from None
        if self._rolled:
            # A busy topic stays within its retention without any cron job: the writer
            # that rolls runs the cleaner (outside the partition lock; skipped if another
            # process is cleaning). A failure does not fail the append (it is done).
            self._rolled = False
            if self.on_roll is not None:
                try:
                    self.on_roll(self)
                except (FslogError, OSError) as e:
                    self.clean_errors.append(e)
        return out

    def _io_error(self, what: str, e: OSError) -> Exception:
        """A disk-full (or similar) error, saying where and what to do."""
        if e.errno == errno.ELOOP:
            return e  # a symlinked file: the CLI names it
        where = e.filename or (self._writer.path if self._writer is not None else self.path)
        return FslogError(
            f"cannot {what} {self.topic}/{self.number} ({where}): {e.strerror}; records "
            f"acknowledged before are intact and a partly written batch is dropped by the next "
            f"writer: free space (or lift the file size limit) and run again")

    def _refuse_if_follower(self) -> None:
        if os.path.exists(self._follower_marker):
            raise NotLeaderError(
                f"{self.root} is a follower (fslog replicate): its log is a copy of its "
                f"leader's; write to the leader, or make this root the leader with "
                f"'fslog promote' once no 'fslog replicate' runs on it")

    def _append_locked(self, batches: list[bytearray], out: list) -> None:
        with self._lock:
            self._refuse_if_follower()
            epoch = self._epoch.current()
            w = self._active()
            chunk = bytearray()
            heads: list[tuple[int, rb.BatchHeader]] = []
            nxt = w.next_offset
            for b in batches:
                if self._should_roll(w, w.size + len(chunk), len(b),
                                     rb.read_header(b, 0).max_timestamp):
                    if chunk:
                        w.append(chunk, heads)
                        chunk, heads = bytearray(), []
                    if w.size:
                        w = self._roll(w)
                        nxt = w.next_offset
                rb.set_base_offset(b, nxt)
                rb.set_leader_epoch(b, epoch)
                h = rb.read_header(b, 0)
                heads.append((len(chunk), h))
                chunk += b
                out.append((nxt, h.last_offset))
                nxt = h.next_offset
            if chunk:
                w.append(chunk, heads)

    def sync(self) -> None:
        """fsync every segment this object appended to since the last sync."""
        try:
            w = self._writer
            if w is not None and w.fd >= 0:
                os.fsync(w.fd)
            pending, self._unsynced = self._unsynced, []
            for fd in pending:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as e:
            raise self._io_error("fsync", e) from None

    def may_roll(self, incoming: int, incoming_ts: int) -> bool:
        """Might appending a batch of ``incoming`` bytes (greatest timestamp
        ``incoming_ts``) roll a segment (and so run the cleaner)? True when this object has
        no open writer yet; a hint for callers that keep quick appends off worker
        threads (another process may have appended since: the append itself decides)."""
        w = self._writer
        return w is None or w.fd < 0 or self._should_roll(w, w.size, incoming, incoming_ts)

    def take_unsynced(self) -> list[int]:
        """Duplicates of the file descriptors ``sync`` would fsync, which this object then
        forgets: the caller fsyncs and closes them. Lets a server fsync outside the lock
        that serializes its use of this object, so appends go on during the fsync (one
        fsync for every producer waiting on the partition: group commit)."""
        fds, self._unsynced = self._unsynced, []
        w = self._writer
        if w is not None and w.fd >= 0:
            fds.append(os.dup(w.fd))
        return fds

    def recover(self) -> int:
        """Open the active segment under the lock (truncating a torn tail, rebuilding
        missing or inconsistent indexes); return how many torn bytes were dropped."""
        with self._lock:
            if self._writer is not None:
                self._retire(self._writer)
                self._writer = None
            if not self.segment_bases():
                return 0
            w = self._active()
            return w.truncated_bytes

    def close(self) -> None:
        if self._writer is not None:
            self._retire(self._writer)
            self._writer = None
        self.sync()
        if self.clean_deferred and self.on_roll is not None:
            self.clean_deferred = False
            self.closing = True
            try:
                self.on_roll(self)
            except (FslogError, OSError) as e:
                self.clean_errors.append(e)
            finally:
                self.closing = False
