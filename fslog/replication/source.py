"""Where a follower copies from: a leader, seen through a small read-only interface.

``RootLeader`` is a leader that is another fslog root on this machine (another disk, a
mount): it reads that root's files with no lock, as any fslog reader does, and never
writes there. A network leader (``fslog serve``, Fetch with a replica id) offers the
same methods over Kafka's protocol.

The interface (what ``follower.py`` uses):

- ``topics()``: {name: {"partitions", "config", "id"}} — "id" changes when a topic is
  deleted and created again under the same name (Kafka's topic id).
- ``partition_state(topic, p)``: ``LeaderPartition`` — log start and end offsets, segment
  base offsets, sealed segment sizes, the leader-epoch entries.
- ``fetch(topic, p, offset, max_bytes)``: whole batches from the one holding ``offset``
  (at least one, even past ``max_bytes``; Kafka's KIP-74), across segment rolls, with the
  segment base offsets where the leader rolled.
- ``end_offset_for_epoch(topic, p, epoch)``: Kafka's OffsetForLeaderEpoch.
- ``committed_offsets()``: {group: {(topic, p): offset}}.
- ``segment_path(topic, p, base)``: a sealed segment's file (file leaders only: the
  follower copies segments the leader's compaction rewrote).
- ``wait(timeout)``: sleep until the leader's log may have changed.

Not thread-safe; one per follower.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

from ..errors import FslogError
from ..storage import files, leader_epoch
from ..storage.segment import SegmentReader
from ..storage.topic import Topic

if TYPE_CHECKING:
    from ..storage.follow import AppendWaiter


class LeaderPartition(NamedTuple):
    start: int
    end: int
    bases: list[int]                # segment base offsets, oldest first
    sizes: dict[int, int]           # base -> bytes, of sealed segments
    epochs: list[tuple[int, int]]   # (epoch, start offset)
    cleaned_at: int                 # changes when the leader's cleaner rewrote segments


class RootLeader:
    def __init__(self, root: str):
        self.root = os.path.abspath(os.path.expanduser(root))
        if not os.path.isdir(files.topics_dir(self.root)):
            raise FslogError(f"{self.root} is not an fslog root (it has no "
                             f"{files.TOPICS_DIR}/ directory): give the leader's --root")
        self._topics: dict[str, Topic] = {}
        self._waiter: AppendWaiter | None = None
        self._watched: tuple = ()

    def describe(self) -> str:
        return self.root

    # ------------------------------------------------------------ metadata
    def topics(self) -> dict[str, dict]:
        out = {}
        tdir = files.topics_dir(self.root)
        for name in sorted(os.listdir(tdir)):
            try:
                t = Topic(self.root, name)
                st = os.stat(t.path)
            except (FslogError, OSError):
                continue  # not a topic, or deleted meanwhile
            out[name] = {"partitions": t.partition_count, "config": dict(t.config.overrides),
                         "id": f"{st.st_dev}:{st.st_ino}"}
            self._topics[name] = t
        for gone in set(self._topics) - set(out):
            del self._topics[gone]
        return out

    def _partition(self, topic: str, p: int):
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = Topic(self.root, topic)
        return t.partition(p)

    def partition_state(self, topic: str, p: int) -> LeaderPartition:
        part = self._partition(topic, p)
        bases = part.segment_bases()
        sizes = {}
        for b in bases[:-1]:
            try:
                sizes[b] = os.stat(os.path.join(part.path, files.segment_name(b))).st_size
            except FileNotFoundError:
                pass
        try:
            cleaned = os.stat(os.path.join(part.path, files.CLEANER_CHECKPOINT_FILE)).st_mtime_ns
        except FileNotFoundError:
            cleaned = 0
        end = self._end(part, bases)
        start = bases[0] if bases else 0
        epochs = leader_epoch.read_entries(leader_epoch.checkpoint_path(part)) or [(0, start)]
        return LeaderPartition(start, end, bases, sizes, epochs, cleaned)

    @staticmethod
    def _end(part, bases: list[int]) -> int:
        for b in reversed(bases):
            try:
                seg = SegmentReader(part.path, b)
            except FileNotFoundError:
                continue
            try:
                return seg.next_offset()
            finally:
                seg.close()
        return 0

    def end_offset_for_epoch(self, topic: str, p: int, epoch: int) -> tuple[int, int]:
        return leader_epoch.end_offset_for(self._partition(topic, p), epoch)

    def segment_path(self, topic: str, p: int, base: int) -> str:
        return os.path.join(self._partition(topic, p).path, files.segment_name(base))

    # ------------------------------------------------------------ data
    def fetch(self, topic: str, p: int, offset: int, max_bytes: int) -> tuple[bytearray, list[int]]:
        """(whole batches from the one holding ``offset``, the leader's segment bases).
        Empty when ``offset`` is the log-end offset (or the partition is being changed)."""
        part = self._partition(topic, p)
        bases = part.segment_bases()
        out = bytearray()
        i = max((k for k, b in enumerate(bases) if b <= offset), default=None)
        if i is None:
            return out, bases
        while i < len(bases):
            try:
                seg = SegmentReader(part.path, bases[i])
            except FileNotFoundError:  # retention deleted it meanwhile: look again later
                return out, bases
            try:
                pos = seg.position_for(offset) if not out else 0
                for _pos, h, data in seg.batches(pos):
                    if out and len(out) + len(data) > max_bytes:
                        return out, bases
                    out += data
                    offset = h.next_offset
            finally:
                seg.close()
            if i + 1 < len(bases) and offset < bases[i + 1]:
                return out, bases  # this segment is not complete yet (or is damaged)
            i += 1
        return out, bases

    # ------------------------------------------------------------ groups
    def committed_offsets(self) -> dict[str, dict[tuple[str, int], int]]:
        from ..groups.registry import Registry, list_groups
        out = {}
        for g in list_groups(self.root):
            try:
                reg = Registry(self.root, g, create=False)
                out[g] = reg.committed_all(unreadable=[])
            except (FslogError, OSError):
                continue
        return out

    # ------------------------------------------------------------ waiting
    def wait(self, timeout: float, topics: dict[str, dict], positions=None,
             stop=None) -> None:
        """Sleep until a watched partition of the leader changes, or ``timeout`` (``stop``:
        not looked at; the wait is short)."""
        import logging

        from ..storage.follow import AppendWaiter
        # a watched directory deleted on the leader (a topic deleted) makes watchdog log a
        # warning on stderr; the next wait watches what is there then
        logging.getLogger("watchdog").setLevel(logging.CRITICAL)
        paths = [files.topics_dir(self.root)]
        for name, meta in topics.items():
            for i in range(meta["partitions"]):
                d = files.partition_dir(self.root, name, i)
                if os.path.isdir(d):
                    paths.append(d)
        key = tuple(paths)
        if key != self._watched or self._waiter is None:
            if self._waiter is not None:
                self._waiter.close()
            self._waiter = AppendWaiter(paths)
            self._watched = key
        self._waiter.wait(timeout)

    def close(self) -> None:
        if self._waiter is not None:
            self._waiter.close()
            self._waiter = None
