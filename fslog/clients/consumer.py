"""Consumers: what ``fslog consume`` reads from, with or without a group.

Both kinds hand out ``(topic, FetchedBatch, stop)`` tuples from ``fetch()``, where ``stop``
is the offset at which this run ends for that partition (None when following), and learn
from ``delivered()`` how far output has really been written and flushed.

``Consumer`` reads whole topics from a start spec; it commits nothing.

``GroupConsumer`` joins a group (``group.py``), reads only its assigned partitions, each
from the group's committed offset, takes a partition's owner lock before reading it and
releases it on revocation after committing. Commits are at-least-once: only offsets the
caller reported as delivered are committed, at least every ``commit_interval`` seconds,
on revocation and on ``close()``. Not thread-safe (one per consuming thread).
"""

from __future__ import annotations

import time

from ..storage.locks import ProcessLock, read_holder
from ..storage.reader import PartitionReader, TopicReader


def retention_messages(reader, group: str | None = None) -> list[str]:
    """Warnings for records a reader skipped because retention deleted them first."""
    out = []
    who = f"group {group!r}" if group else "this reader"
    for first, start in reader.retention_skips:
        out.append(f"{reader.partition.topic}/{reader.partition.number}: {start - first} records "
                   f"(offsets {first}..{start - 1}) were deleted by retention before {who} read "
                   f"them; going on from the log start offset {start}")
    reader.retention_skips.clear()
    return out


def damage_message(d: dict) -> str:
    offsets = (f"offset {d['first_offset']}" if d["last_offset"] <= d["first_offset"]
               else f"offsets {d['first_offset']}..{d['last_offset']}")
    return (f"skipped damaged data: {d['path']}: position {d['position']}, {d['bytes']} bytes "
            f"({d['topic']}/{d['partition']} {offsets}); 'fslog verify' shows the damage")


def open_consumer(log, topics: list[str], group: str | None = None,
                  partition: int | None = None, start="beginning", follow: bool = False,
                  session_timeout: float = 10.0, skip_corrupt: bool = False):
    """A ``GroupConsumer`` of ``group``, or without a group a ``Consumer`` of the topics
    (of one partition, if given): what ``fslog consume`` reads from."""
    if group is not None:
        return GroupConsumer(log, group, topics, start=start, follow=follow,
                             session_timeout=session_timeout, skip_corrupt=skip_corrupt)
    return Consumer(log, topics, partitions=None if partition is None else [partition],
                    start=start, follow=follow, skip_corrupt=skip_corrupt)


class Consumer:
    def __init__(self, log, topics: list[str], partitions: list[int] | None = None,
                 start="beginning", follow: bool = False, skip_corrupt: bool = False):
        self.log = log
        self.readers = [TopicReader(log.topic(t), partitions=partitions, start=start,
                                    stop_at_end=not follow, skip_corrupt=skip_corrupt)
                        for t in topics]
        self.warnings: list[str] = []
        for tr in self.readers:
            for r in tr.readers.values():
                self.warnings.extend(retention_messages(r))

    def fetch(self, want=None):
        """Batches available now. ``want(topic, partition)``, if given, says which
        partitions to read from this time (a caller with a backlog reads no further)."""
        out = []
        for tr in self.readers:
            name = tr.topic.name
            if want is None:
                batches = tr.fetch()
            else:
                batches = []
                for n, r in tr.readers.items():
                    if tr.stop_offsets is not None and r.next_offset >= tr.stop_offsets[n]:
                        continue
                    if want(name, n):
                        batches.extend(r.fetch())
            for b in batches:
                stop = tr.stop_offsets[b.partition] if tr.stop_offsets is not None else None
                out.append((name, b, stop))
            for r in tr.readers.values():
                self.warnings.extend(map(damage_message, r.damage))
                r.damage.clear()
                if r.retention_skips:
                    self.warnings.extend(retention_messages(r))
        return out

    def delivered(self, topic: str, partition: int, next_offset: int) -> None:
        pass

    def claim(self, topic: str, partition: int) -> int | None:
        """Which reading of the partition fetched batches belong to (see GroupConsumer)."""
        return 0

    busy = None

    def after_write(self) -> None:
        pass

    def maybe_commit(self, force: bool = False) -> None:
        pass

    def caught_up(self) -> bool:
        return all(tr.caught_up() for tr in self.readers)

    def watch_paths(self) -> list[str]:
        return [p.path for tr in self.readers for p in (tr.topic.partition(n) for n in tr.readers)]

    def check(self) -> None:
        pass

    poll_interval = None

    def pending(self) -> bool:
        return False

    def close(self) -> None:
        for tr in self.readers:
            tr.close()


class _Owned:
    __slots__ = ("reader", "lock", "stop", "delivered", "committed", "skips", "epoch")

    def __init__(self, reader, lock, stop, committed, epoch=0):
        self.epoch = epoch
        self.reader = reader
        self.lock = lock
        self.stop = stop
        self.delivered = committed
        self.committed = committed
        self.skips: list[tuple[int, int]] = []  # damaged offset ranges stepped over


class GroupConsumer:
    def __init__(self, log, group: str, topics: list[str], start="beginning",
                 follow: bool = False, session_timeout: float = 10.0,
                 heartbeat_interval: float = 1.0, commit_interval: float = 1.0,
                 skip_corrupt: bool = False):
        self.log = log
        self.skip_corrupt = skip_corrupt
        self.topics = {t: log.topic(t) for t in topics}
        self.follow = follow
        self.start = start
        self.commit_interval = commit_interval
        from ..groups.member import GroupMember  # imported here: plain consumers do not need it
        self.member = GroupMember(log, group, topics, session_timeout, heartbeat_interval)
        self.registry = self.member.registry
        self.owned: dict[tuple[str, int], _Owned] = {}
        self.wanted: set[tuple[str, int]] = set()
        self.warnings: list[str] = []
        self._stamp: int | None = None
        self._last_commit = time.monotonic()
        self._epochs = 0
        # ``busy(tp) -> bool``: a caller still working on records of a partition (--exec)
        # keeps it until done; a revoked partition is released (committed, unlocked) only
        # once it is not busy, so its next owner never handles records of it concurrently.
        self.busy = None
        self.member.join()
        try:
            self._sync()
        except BaseException:
            # a join that cannot go on leaves nothing behind: not its partitions, not
            # a member record in the registry that others must wait to evict
            self.close()
            raise

    # ------------------------------------------------------------ assignment
    def _sync(self) -> None:
        """Follow the registry: release revoked partitions, take newly assigned ones."""
        stamp = self.registry.stamp()
        if stamp != self._stamp or any(tp not in self.owned for tp in self.wanted):
            self._stamp = stamp
            _generation, self.wanted = self.member.assignment()
        busy = self.busy
        for tp in [tp for tp in self.owned
                   if tp not in self.wanted and not (busy is not None and busy(tp))]:
            self._release(tp)
        for tp in sorted(self.wanted):
            if tp not in self.owned:
                self._take(tp)

    def _take(self, tp: tuple[str, int]) -> None:
        topic, p = tp
        lock = ProcessLock(self.registry.owner_lock_path(topic, p))
        if lock.try_acquire():
            lock.set_holder(self.member.member_id)
        else:
            # The previous owner has not let go yet. If it is a live member it will, at its
            # next poll: retry then. If it was evicted (hung past its session timeout), it
            # is no member any more: take the partition over; the hung process drops it as
            # soon as it resumes and sees the new generation.
            holder = read_holder(lock.path)
            if holder is None or holder in self.registry.read()["members"]:
                return
        try:
            part = self.topics[topic].partition(p)
            committed = self.registry.committed(topic, p, self.topics[topic])
            end = part.end_offset()
            if committed is None:
                if self.start in ("end", "latest"):
                    offset = end
                else:
                    offset = part.start_offset()
            else:
                offset = min(committed, end)
            reader = PartitionReader(part, offset, self.skip_corrupt)
            gone = list(reader.retention_skips)  # nothing there to deliver: move past it
            self.warnings.extend(retention_messages(reader, self.member.group))
            if committed is None:
                # Record where the group starts, so that a later run continues from here
                # (with --offset end, that is the end as it was now) even if this one
                # delivers nothing.
                committed = reader.next_offset
                self.registry.commit(topic, p, committed, self.member.member_id, self.topics[topic])
            self._epochs += 1
            self.owned[tp] = _Owned(reader, lock, None if self.follow else end, committed,
                                    self._epochs)
            self.owned[tp].skips.extend(gone)
        except BaseException:
            lock.release()
            raise

    def _release(self, tp: tuple[str, int]) -> None:
        o = self.owned.pop(tp)
        try:
            self._commit_one(tp, o)
        finally:
            o.reader.close()
            o.lock.release()

    # ------------------------------------------------------------ reading
    def fetch(self, want=None):
        """Batches of the assigned partitions; ``want(topic, partition)``, if given, says
        which of them to read from this time."""
        self.check()
        self._sync()
        out = []
        for (topic, p), o in list(self.owned.items()):
            if not o.lock.held and o.lock.try_acquire():  # taken over from a hung member
                o.lock.set_holder(self.member.member_id)
            if o.stop is not None and o.reader.next_offset >= o.stop:
                continue
            if (topic, p) not in self.wanted:  # revoked, kept only while busy
                continue
            if want is not None and not want(topic, p):
                continue
            for b in o.reader.fetch():
                out.append((topic, b, o.stop))
            if o.reader.retention_skips:
                o.skips.extend(o.reader.retention_skips)
                self.warnings.extend(retention_messages(o.reader, self.member.group))
            self.warnings.extend(map(damage_message, o.reader.damage))
            o.skips.extend((d["first_offset"], d["last_offset"] + 1) for d in o.reader.damage)
            o.reader.damage.clear()
        return out

    def delivered(self, topic: str, partition: int, next_offset: int) -> None:
        o = self.owned.get((topic, partition))
        if o is not None and next_offset > o.delivered:
            o.delivered = next_offset

    def claim(self, topic: str, partition: int) -> int | None:
        """A number naming this member's current reading of an assigned partition, or
        None if the partition is not (or no longer) assigned to it. Batches fetched under
        one number are gone once it changes: the partition was released and taken again,
        and its new reader starts from the committed offset."""
        o = self.owned.get((topic, partition))
        if o is None or (topic, partition) not in self.wanted:
            return None
        return o.epoch

    def after_write(self) -> None:
        """Once everything before a stepped-over damaged range is delivered, so is the
        range (--skip-corrupt): the group moves past it."""
        for o in self.owned.values():
            while o.skips and o.delivered >= o.skips[0][0]:
                o.delivered = max(o.delivered, o.skips.pop(0)[1])

    def _commit_one(self, tp, o: _Owned) -> None:
        if o.delivered != o.committed:
            self.registry.commit(tp[0], tp[1], o.delivered, self.member.member_id,
                                 self.topics[tp[0]])
            o.committed = o.delivered

    def maybe_commit(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_commit < self.commit_interval:
            return
        for tp, o in self.owned.items():
            self._commit_one(tp, o)
        self._last_commit = time.monotonic()

    def caught_up(self) -> bool:
        """Without --follow: every assigned partition is owned and read to its stop offset."""
        if self.follow:
            return False
        self._sync()
        if any(tp not in self.owned for tp in self.wanted):
            return False
        return all(o.reader.next_offset >= o.stop and o.delivered >= min(o.stop, o.reader.next_offset)
                   for o in self.owned.values())

    def watch_paths(self) -> list[str]:
        # Not the group directory: its registry is replaced by rename every heartbeat, and
        # watchdog holds back events behind a rename while it pairs moves, which would
        # delay appends. The consumer polls the registry instead (``poll_interval``).
        paths: list[str] = []
        for t in self.topics.values():
            paths.extend(p.path for p in t.partitions())
        return paths

    poll_interval = 0.25  # how often a waiting member looks at the registry

    def pending(self) -> bool:
        """True while an assigned partition waits for its previous owner to let go."""
        return any(tp not in self.owned for tp in self.wanted)

    def check(self) -> None:
        if self.member.error is not None:
            raise self.member.error

    def close(self) -> None:
        """Commit what was delivered, release partitions, leave the group."""
        try:
            for tp in list(self.owned):
                self._release(tp)
        finally:
            self.member.leave()
