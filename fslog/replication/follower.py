"""The follower: keeps a local root a byte-for-byte copy of a leader's topics, Kafka's
replica fetcher for fslog.

One pass (``run_pass``) brings every wanted topic in line with the leader:

1. Topics: created here as the leader has them (partition count, config overrides),
   configs kept equal, topics the leader deleted deleted here (only topics this follower
   copied), a topic deleted and created again on the leader copied again from scratch.
2. Per partition, in order:
   - divergence: the first time, and whenever the leader's latest epoch changed, this log's
     latest leader epoch is looked up on the leader (OffsetForLeaderEpoch); a tail written
     in an epoch the leader never had is truncated (an ``truncated`` event says how many
     records went). The last batch here is also compared with the leader's at the same
     offset: a log that is not a copy of the leader's is refused, never appended to.
   - the log start offset: segments the leader deleted (retention) are deleted here;
   - sealed segments: a sealed segment of the leader that differs from the local one
     (the leader's compaction rewrote it) is copied over the local ones through the
     cleaner's crash-safe swap;
   - data: whole batches from the local log-end offset, appended at the leader's offsets,
     rolling where the leader rolled; then fsync. The next fetch offset is therefore always
     the durable log-end offset: a follower killed -9 resumes with no gap and no duplicate
     (a torn tail is dropped by the next open, and fetched again).
3. Groups: the leader's committed offsets are written here (at most the local log-end
   offset of the partition: a group never points past what this root holds).

``follow`` repeats passes, woken by the leader's appends (inotify) and at least twice a
second (group offsets); from a network leader, between passes, Fetch-append-fsync rounds
copy the data, and what a pass asks the leader is asked by a thread of its own
(``_MetadataThread``), so that those rounds never wait behind it. Events (dicts with an "event" key) go to ``on_event``; the library
never prints. One follower per root: ``start`` takes ``ROOT/replicate.lock`` and writes
``ROOT/follower.json`` (local producers then refuse to write; ``fslog promote`` ends it).
"""

from __future__ import annotations

import os
import re
import threading
import time

from ..errors import FslogError, LeaderUnavailableError, ReplicationError, UnreadableOffsetError
from ..log import Log
from ..records import batch as rb
from ..storage import leader_epoch
from ..storage.replica import (
    ReplicaPartition,
    read_follower_state,
    replicate_lock,
    running_follower,
    write_follower_state,
)
from ..storage.segment import SegmentReader

MAX_FETCH_BYTES = 8 << 20
FETCH_WAIT = 0.25  # the longest a Fetch waits for data (a long poll), seconds
REPLICATED_MEMBER = "replicated"  # the member name on committed offsets copied from the leader


class _PartState:
    __slots__ = (
        "bytes",
        "checked",
        "end",
        "layout",
        "leader_epoch",
        "records",
        "start",
        "truncated",
    )

    def __init__(self):
        self.checked = False
        self.leader_epoch = None
        self.layout = None
        self.records = 0
        self.bytes = 0
        self.truncated = 0
        self.end = 0
        self.start = 0


class Follower:
    def __init__(self, log: Log, source, topics: str | None = None, on_event=None,
                 max_fetch_bytes: int = MAX_FETCH_BYTES):
        self.log = log
        self.source = source
        try:
            self.pattern = re.compile(topics) if topics else None
        except re.error as e:
            raise FslogError(f"--topics {topics!r} is not a regular expression: {e}") from None
        self.on_event = on_event or (lambda ev: None)
        self.max_fetch_bytes = max_fetch_bytes
        self._lock = replicate_lock(log.root)
        self._parts: dict[tuple[str, int], ReplicaPartition] = {}
        self._pstate: dict[tuple[str, int], _PartState] = {}
        self._group_seen: dict[tuple[str, str, int], int] = {}
        self._state: dict = {}
        self._written = ""  # follower.json as last written
        self._leader_topics: dict[str, dict] = {}
        self.topics_created: list[str] = []
        self.topics_deleted: list[str] = []
        self.groups_copied: set[str] = set()
        self.passes = 0
        self._ask = source  # what run_pass asks for topics, partition states and groups

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        same = getattr(self.source, "root", None)
        if same is not None and os.path.exists(same) and os.path.samefile(same, self.log.root):
            raise ReplicationError(f"{self.log.root} cannot follow itself: give --from another "
                                   f"root (the leader) and --root this follower's")
        if not self._lock.try_acquire():
            who = running_follower(self.log.root) or "another process"
            raise ReplicationError(f"{self.log.root}: 'fslog replicate' already runs on this root "
                                   f"({who}); one follower per root")
        self._lock.set_holder(f"pid {os.getpid()}, following {self.source.describe()}")
        old = read_follower_state(self.log.root) or {}
        leader = self.source.describe()
        topics = old.get("topics") if old.get("leader") == leader else None
        self._state = {"leader": leader, "since": old.get("since") if topics is not None
                       else int(time.time() * 1000),
                       "topics": dict(topics or {}), "groups": list(old.get("groups") or [])
                       if topics is not None else []}
        # (with a new leader, the topics here are checked against it by leader epochs and
        # their last batch, not by the ids of another leader's topics)
        self._write_state()

    def close(self) -> None:
        for p in self._parts.values():
            try:
                p.close()
            except FslogError:
                pass
        self._parts.clear()
        self.source.close()
        self._lock.release()

    def wanted(self, topic: str) -> bool:
        return self.pattern is None or self.pattern.fullmatch(topic) is not None

    # ------------------------------------------------------------ passes
    def run_pass(self, asked: _Asked | None = None) -> None:
        """A full pass; ``asked``: what the leader answered to a metadata thread (topics,
        partition states, groups), else the leader is asked now."""
        self.passes += 1
        self._ask = self.source if asked is None else asked
        if asked is not None:
            self.source.adopt(asked.metadata)
        leader_topics = {n: m for n, m in self._ask.topics().items() if self.wanted(n)}
        self._leader_topics = leader_topics
        self._sync_topics(leader_topics)
        for name, meta in leader_topics.items():
            if name not in self._state["topics"]:
                continue  # could not be set up (reported)
            for p in range(meta["partitions"]):
                self._sync_partition(name, p)
        self._sync_groups()
        self._write_state()

    def _write_state(self) -> None:
        """``follower.json``, when it changed (it is fsynced: not on every pass)."""
        import json
        now = json.dumps(self._state, sort_keys=True)
        if now != self._written:
            write_follower_state(self.log.root, self._state)
            self._written = now

    def leader_lost(self, error: LeaderUnavailableError) -> None:
        """The leader could not be reached (``error``): an "unavailable" event says so,
        and every partition is checked against the leader's epochs again before anything
        more is appended to it — the leader may come back restarted, having lost records
        this log copied (appended there, not yet fsynced). ``follow`` calls it; call it
        when a pass of your own failed so, then ``follow(stop, down=True)``."""
        self.on_event({"event": "unavailable", "message": f"{error}; retrying every second"})
        for ps in self._pstate.values():
            ps.checked = False
        self.source.close()

    def follow(self, stop: threading.Event, interval: float = 0.5, down: bool = False) -> None:
        """Passes until ``stop``; a leader that cannot be reached is retried every second
        (an "unavailable" event says so once, a "reconnected" event when it is back).

        A leader that can fetch many partitions in one long-poll (a network leader:
        ``fetch_many``) is followed as Kafka's replica fetcher does: between two full
        passes (every ``interval``: topics, configs, log start, groups) each Fetch waits
        for new batches and they are appended and fsynced at once, so the next Fetch
        reports the new durable position (what acks=all waits for). A leader that has a
        ``twin`` (a network leader) is asked what a full pass needs by a metadata thread
        on connections of its own; the pass applies its answers (after a failure of that
        thread, or while the leader is unreachable, the pass asks itself). ``down``: the
        leader was found unreachable already (``leader_lost``)."""
        fetcher = getattr(self.source, "fetch_many", None)
        asker = _MetadataThread(self, interval) if hasattr(self.source, "twin") else None
        try:
            while not stop.is_set():
                try:
                    if asker is None or down or not self.passes:
                        self.run_pass()
                    else:
                        asked = asker.take()
                        if asked is not None and asked.error is not None:
                            self.run_pass()  # the leader as this thread sees it now
                        elif asked is not None:
                            self.run_pass(asked)
                    if asker is not None:
                        asker.start()  # (once: from the first pass on)
                    if fetcher is not None and not down:
                        self._fetch_until(fetcher, time.monotonic() + interval, stop,
                                          asker.fresh if asker is not None else None)
                except LeaderUnavailableError as e:
                    if not down:
                        self.leader_lost(e)
                    else:
                        self.source.close()
                    down = True
                    stop.wait(1.0)
                    continue
                if down:
                    self.on_event({"event": "reconnected", "message":
                                   f"{self.source.describe()}: reachable again; following"})
                    down = False
                    continue
                if stop.is_set():
                    break
                if fetcher is None:
                    self.source.wait(interval, self._leader_topics,
                                     {k: ps.end for k, ps in self._pstate.items()}, stop=stop)
        finally:
            if asker is not None:
                asker.close()

    def _fetch_until(self, fetcher, deadline: float, stop: threading.Event,
                     fresh: threading.Event | None = None) -> None:
        """Fetch-append-fsync rounds until ``deadline`` or ``fresh`` (a metadata thread has
        news for a full pass); anything unusual (a leader moved, a batch not at this log's
        end) ends them early: the full pass sorts it out."""
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or (fresh is not None and fresh.is_set()):
                return
            positions = {k: ps.end for k, ps in self._pstate.items()
                         if ps.checked and k[0] in self._state["topics"] and k in self._parts}
            if not positions:
                stop.wait(left)
                return
            got = fetcher(positions, self.max_fetch_bytes, min(left, FETCH_WAIT))
            wrote = []
            odd = False
            try:
                for key, data in got.items():
                    if data is None:
                        odd = True
                        continue
                    if not data:
                        continue
                    rp, ps = self._parts[key], self._pstate[key]
                    off = ps.end  # this log's end (the writer checks it again)
                    if rb.read_header(data, 0).base_offset != off:
                        odd = True
                        continue
                    wrote.append(rp)
                    try:
                        end = rp.follower_append(data, None)
                    except ReplicationError:
                        odd = True  # changed under us: the full pass looks at it
                        continue
                    ps.bytes += len(data)
                    ps.records += end - off
                    ps.end = end
            finally:
                for rp in wrote:
                    rp.sync()  # before the next fetch reports the position (acks=all)
            if odd:
                return

    # ------------------------------------------------------------ topics
    def _sync_topics(self, leader_topics: dict[str, dict]) -> None:
        known = self._state["topics"]
        for name, meta in leader_topics.items():
            if name in known and known[name] != meta["id"]:
                self._delete_local(name, "the leader deleted it and created it again")
                known.pop(name, None)
            exists = self.log.exists(name)
            if not exists:
                self.log.create_topic(name, partitions=meta["partitions"], config=meta["config"],
                                      if_not_exists=True)
                self.topics_created.append(name)
                self.on_event({"event": "topic_created", "topic": name,
                               "partitions": meta["partitions"], "config": meta["config"]})
            t = self.log.topic(name)
            if t.partition_count != meta["partitions"]:
                self.on_event({"event": "error", "topic": name, "message":
                               f"topic {name!r} has {t.partition_count} partitions here and "
                               f"{meta['partitions']} on the leader: not copied; delete it here "
                               f"('fslog topic delete {name}') to copy it afresh"})
                known.pop(name, None)
                continue
            if dict(t.config.overrides) != meta["config"]:
                t.set_config(meta["config"])
                self._drop_partitions(name)
                self.on_event({"event": "topic_config", "topic": name, "config": meta["config"]})
            known[name] = meta["id"]
        for name in list(known):
            if name not in leader_topics and self.wanted(name):
                self._delete_local(name, "the leader deleted it")
                known.pop(name, None)

    def _delete_local(self, name: str, why: str) -> None:
        self._drop_partitions(name)
        if self.log.exists(name):
            self.log.delete_topic(name)
            self.topics_deleted.append(name)
            self.on_event({"event": "topic_deleted", "topic": name, "reason": why})

    def _drop_partitions(self, name: str) -> None:
        for key in [k for k in self._parts if k[0] == name]:
            self._parts.pop(key).close()
            self._pstate.pop(key, None)

    def _partition(self, topic: str, p: int) -> ReplicaPartition:
        key = (topic, p)
        rp = self._parts.get(key)
        if rp is None:
            t = self.log.topic(topic)
            rp = self._parts[key] = ReplicaPartition(self.log.root, topic, p, t.config)
            rp.sync_found()  # a previous follower's unsynced tail: durable before reported
        return rp

    # ------------------------------------------------------------ partitions
    def _sync_partition(self, topic: str, p: int) -> None:
        key = (topic, p)
        ps = self._pstate.setdefault(key, _PartState())
        rp = self._partition(topic, p)
        try:
            lp = self._ask.partition_state(topic, p)
        except (FslogError, OSError):
            return  # deleted or changed on the leader meanwhile: the next pass sees it
        if not ps.checked or lp.epochs[-1][0] != ps.leader_epoch:
            self._reconcile(topic, p, rp, ps, lp)
            ps.checked = True
            ps.leader_epoch = lp.epochs[-1][0]
        bases = rp.segment_bases()
        if not bases and lp.bases:
            rp.start_at(lp.start)
        elif bases and bases[0] < lp.start and lp.bases:
            deleted = rp.advance_start(lp.start)
            if deleted:
                self.on_event({"event": "log_start", "topic": topic, "partition": p,
                               "start_offset": rp.start_offset(), "segments_deleted": len(deleted)})
        layout = (tuple(lp.bases), tuple(sorted(lp.sizes.items())), lp.cleaned_at)
        if layout != ps.layout and getattr(self.source, "segment_path", None) is not None:
            if self._mirror_sealed(topic, p, rp, lp):
                ps.layout = layout
        self._copy(topic, p, rp, ps, lp)
        ps.start = rp.start_offset()

    def _copy(self, topic: str, p: int, rp: ReplicaPartition, ps: _PartState, lp) -> None:
        off = rp.end_offset()
        wrote = False
        truncated_for_compaction = False
        while off < lp.end:
            data, bases = self.source.fetch(topic, p, off, self.max_fetch_bytes)
            if not data:
                break
            first = rb.read_header(data, 0).base_offset
            if first != off:
                if first < off and self._reinstall(topic, p, rp, off, bases):
                    off = rp.end_offset()
                    continue
                if first < off and bases is None and not truncated_for_compaction:
                    # a network leader's compaction moved the batch boundaries (its
                    # segments cannot be copied whole): take its batch from ``first`` on
                    truncated_for_compaction = True
                    off = rp.truncate_to(first)["to_offset"]
                    continue
                if first < off:
                    raise ReplicationError(
                        f"{topic}/{p}: the leader's batch holding offset {off} starts at "
                        f"{first}: this log is not a copy of the leader's; delete the topic "
                        f"here to copy it afresh")
                break  # the leader's log start moved past ``off``: the next pass follows
            n0 = off
            off = rp.follower_append(data, bases)
            wrote = True
            ps.bytes += len(data)
            ps.records += off - n0
        if wrote:
            rp.sync()
        ps.end = off

    def _reinstall(self, topic: str, p: int, rp: ReplicaPartition, off: int, bases) -> bool:
        """The leader's batch holding ``off`` starts before it: its compaction rewrote the
        segment being copied. Copy that whole sealed segment in."""
        if bases is None:
            return False
        i = max((k for k, b in enumerate(bases) if b <= off), default=None)
        if i is None or i + 1 >= len(bases):
            return False
        base, end = bases[i], bases[i + 1]
        if not rp.install_segment(base, end, self.source.segment_path(topic, p, base)):
            return False
        self.on_event({"event": "segment_copied", "topic": topic, "partition": p,
                       "base_offset": base, "end_offset": end})
        return True

    def _mirror_sealed(self, topic: str, p: int, rp: ReplicaPartition, lp) -> bool:
        """Bring local sealed segments in line with the leader's (compaction there);
        True when they all match."""
        all_ok = True
        local = rp.segment_bases()
        if not local:
            return True
        local_end = rp.end_offset()
        for i, b in enumerate(lp.bases[:-1]):
            e = lp.bases[i + 1]
            if b < local[0] or b >= local_end:
                continue
            inside = [x for x in local if b <= x < e]
            if inside == [b]:
                k = local.index(b)
                seg_end = local[k + 1] if k + 1 < len(local) else local_end
                if seg_end < e and k + 1 == len(local):
                    continue  # being copied
                if seg_end == e:
                    try:
                        size = os.stat(os.path.join(rp.path, f"{b:020d}.log")).st_size
                    except FileNotFoundError:
                        size = -1
                    if size == lp.sizes.get(b):
                        continue
            if rp.install_segment(b, e, self.source.segment_path(topic, p, b)):
                self.on_event({"event": "segment_copied", "topic": topic, "partition": p,
                               "base_offset": b, "end_offset": e})
                local = rp.segment_bases()
                local_end = rp.end_offset()
            else:
                all_ok = False
        return all_ok

    def _reconcile(self, topic: str, p: int, rp: ReplicaPartition, ps: _PartState, lp) -> None:
        """Truncate a tail the leader does not have (leader epochs); refuse a log that is
        not a copy of the leader's."""
        if not rp.segment_bases():
            return
        local_end = rp.end_offset()
        leader_epoch.truncate_from_end(rp, local_end)
        for _ in range(16):
            if local_end <= rp.start_offset():
                break
            latest = leader_epoch.latest_epoch(rp)
            le, lend = self.source.end_offset_for_epoch(topic, p, latest)
            if le == leader_epoch.UNDEFINED:
                target = min(local_end, lp.start)
            elif le == latest:
                target = min(lend, local_end)
            else:
                _e, fend = leader_epoch.end_offset_for(rp, le, local_end)
                target = min(lend, fend)
            if target >= local_end:
                break
            r = rp.truncate_to(target)
            ps.truncated += r["records"]
            self.on_event({"event": "truncated", "topic": topic, "partition": p,
                           "from_offset": r["from_offset"], "to_offset": r["to_offset"],
                           "records": r["records"], "epoch": latest, "leader_epoch": le})
            local_end = r["to_offset"]
        self._check_same_log(topic, p, rp, local_end, lp)

    def _check_same_log(self, topic: str, p: int, rp: ReplicaPartition, local_end: int, lp) -> None:
        """The last local batch must be the leader's batch at the same offset (unless the
        leader's compaction rewrote it: then the sealed segments are copied over)."""
        bases = rp.segment_bases()
        if not bases or local_end <= bases[0] or local_end > lp.end:
            return
        last = None
        for b in reversed(bases):
            seg = SegmentReader(rp.path, b)
            try:
                for _pos, h, _d in seg.batches(seg.position_for(local_end - 1)):
                    last = h
            finally:
                seg.close()
            if last is not None:
                break
        if last is None:
            return
        peek = getattr(self.source, "peek", None)
        if peek is not None:  # a network leader: a look back must not move our position there
            data, lbases = peek(topic, p, last.base_offset), None
        else:
            data, lbases = self.source.fetch(topic, p, last.base_offset, 1)
        if not data:
            return
        lh = rb.read_header(data, 0)
        if (lh.base_offset, lh.batch_length, lh.crc) == (last.base_offset, last.batch_length, last.crc):
            return
        sealed = lbases is not None and len(lbases) > 1 and lbases[-1] > last.base_offset
        if sealed:
            return  # compaction on the leader: ``_mirror_sealed`` copies the segment over
        raise ReplicationError(
            f"{topic}/{p}: the batch at offset {last.base_offset} here differs from the "
            f"leader's: this root's log is not a copy of the leader's (written here by "
            f"another producer?); delete the topic here ('fslog topic delete {topic}') to copy "
            f"it afresh")

    # ------------------------------------------------------------ groups
    def _sync_groups(self) -> None:
        from ..groups.admin import delete_group
        from ..groups.registry import Registry
        offsets = self._ask.committed_offsets()
        ends = {k: ps.end for k, ps in self._pstate.items()}
        copied = set()
        for g, offs in offsets.items():
            reg = None
            for (t, p), off in sorted(offs.items()):
                if (t, p) not in ends or not self.wanted(t):
                    continue
                value = min(off, ends[(t, p)])
                key = (g, t, p)
                copied.add(g)
                if self._group_seen.get(key) == value:
                    continue
                if reg is None:
                    reg = Registry(self.log.root, g)
                try:
                    cur = reg.committed(t, p)
                except UnreadableOffsetError:
                    cur = None
                if cur != value:
                    reg.commit(t, p, value, member_id=REPLICATED_MEMBER)
                self._group_seen[key] = value
        for g in self._state.get("groups", []):
            if g not in offsets:
                try:
                    delete_group(self.log, g)
                    self.on_event({"event": "group_deleted", "group": g})
                except FslogError as e:
                    self.on_event({"event": "error", "group": g, "message": str(e)})
                    copied.add(g)
                for key in [k for k in self._group_seen if k[0] == g]:
                    del self._group_seen[key]
        self.groups_copied |= copied
        self._state["groups"] = sorted(copied)

    # ------------------------------------------------------------ summary
    def summary(self) -> dict:
        parts = []
        for (t, p), ps in sorted(self._pstate.items()):
            parts.append({"topic": t, "partition": p, "start_offset": ps.start,
                          "end_offset": ps.end, "offsets_copied": ps.records,
                          "bytes_copied": ps.bytes, "records_truncated": ps.truncated})
        return {"leader": self.source.describe(), "root": self.log.root,
                "partitions": parts, "topics_created": self.topics_created,
                "topics_deleted": self.topics_deleted, "groups": sorted(self.groups_copied),
                "offsets_copied": sum(x["offsets_copied"] for x in parts),
                "bytes_copied": sum(x["bytes_copied"] for x in parts),
                "records_truncated": sum(x["records_truncated"] for x in parts)}


class _Asked:
    """What a metadata thread's leader answered, for one full pass: the same calls as a
    leader's (``topics``, ``partition_state``, ``committed_offsets``), answered from
    memory; ``error``: the exception that stopped it asking (the pass asks itself)."""

    def __init__(self):
        self.error: BaseException | None = None
        self.metadata: tuple = ()
        self._topics: dict[str, dict] = {}
        self._states: dict[tuple[str, int], object] = {}
        self._groups: dict = {}

    def topics(self) -> dict[str, dict]:
        return self._topics

    def partition_state(self, topic: str, p: int):
        got = self._states.get((topic, p))
        if got is None:
            raise FslogError(f"{topic}/{p}: not known to the metadata thread yet")
        if isinstance(got, BaseException):
            raise got
        return got

    def committed_offsets(self) -> dict:
        return self._groups


class _MetadataThread:
    """What a full pass asks a network leader — topics and their configs, each
    partition's log start and end, the groups' committed offsets: about six round trips,
    a good part of a second on a busy machine — asked every ``interval`` by a thread of
    its own, on connections of its own (``NetworkLeader.twin``). The follower's fetches,
    which copy the data, never wait behind them (Kafka's replica fetcher does not wait
    for metadata either); the full pass then only applies the answers (``take``)."""

    def __init__(self, follower: Follower, interval: float):
        self.leader = follower.source.twin()
        self.wanted = follower.wanted
        self.interval = interval
        self.fresh = threading.Event()  # an answer not taken yet
        self._latest: _Asked | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fslog-replicate-metadata",
                                            daemon=True)
            self._thread.start()

    def take(self) -> _Asked | None:
        with self._lock:
            got, self._latest = self._latest, None
            self.fresh.clear()
        return got

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self.leader.interrupt()  # a request to a leader that stopped answering
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while not self._done.is_set():
                t0 = time.monotonic()
                asked = self._ask()
                with self._lock:
                    self._latest = asked
                    self.fresh.set()
                pause = self.interval if asked.error is None else 1.0
                self._done.wait(max(0.0, pause - (time.monotonic() - t0)))
        finally:
            self.leader.close()

    def _ask(self) -> _Asked:
        asked = _Asked()
        try:
            topics = {n: m for n, m in self.leader.topics().items() if self.wanted(n)}
            states: dict[tuple[str, int], object] = {}
            for name, meta in topics.items():
                for p in range(meta["partitions"]):
                    try:
                        states[(name, p)] = self.leader.partition_state(name, p)
                    except (FslogError, OSError) as e:  # the pass skips it, as it would
                        states[(name, p)] = e
            asked._groups = self.leader.committed_offsets()
            asked._topics, asked._states = topics, states
            asked.metadata = self.leader.metadata()
        except Exception as e:  # noqa: BLE001 - the pass asks again itself and reports it
            asked.error = e
            self.leader.close()
        return asked
