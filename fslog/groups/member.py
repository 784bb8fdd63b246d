"""A consumer-group member: joins the registry, heartbeats, follows rebalances.

``GroupMember`` registers this process in the group's lease file (``registry.py``), holds
its liveness lock for its lifetime, and runs a heartbeat thread that renews its lease
every ``heartbeat_interval`` seconds and evicts members that are dead (process gone) or
hung (lease older than their session timeout). Joining, leaving and evicting each bump the
generation and recompute the assignment under the group lock.

Partition ownership is separate from assignment: before reading a partition a member
takes its owner lock (``owners/<topic>-<p>.lock``, which names its holder), and it
releases it only after committing what it delivered. So two live members never read one
partition at once, even while they disagree for a moment about the generation. The one
exception is a holder that was evicted as hung: it is no member any more, and its
partitions are taken over without its lock (``consumer.py``).
"""

from __future__ import annotations

import os
import socket
import threading

from ..clock import now_ms
from ..errors import FslogError
from .assignor import assign
from .registry import ProcessLock, Registry, is_locked_by_someone, new_member_id
from .served import refuse_if_served


class GroupMember:
    def __init__(self, log, group: str, topics: list[str], session_timeout: float = 10.0,
                 heartbeat_interval: float = 1.0):
        self.log = log
        self.group = group
        self.topics = sorted(set(topics))
        self.registry = Registry(log.root, group)
        self.member_id = new_member_id()
        self.session_timeout_ms = int(session_timeout * 1000)
        # at least three heartbeats per session timeout, so a healthy member is never evicted
        self.heartbeat_interval = min(heartbeat_interval, session_timeout / 3)
        self._life = ProcessLock(self.registry.member_lock_path(self.member_id))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.started_ms = now_ms()
        self._partition_counts = {t: log.topic(t).partition_count for t in self.topics}

    # ------------------------------------------------------------ registry changes
    def _record(self) -> dict:
        return {"member_id": self.member_id, "host": socket.gethostname(), "pid": os.getpid(),
                "start_time": self.started_ms, "last_heartbeat": now_ms(),
                "session_timeout_ms": self.session_timeout_ms, "topics": self.topics,
                "assigned": []}

    def _counts(self, members: dict) -> dict[str, int]:
        counts = dict(self._partition_counts)
        for m in members.values():
            for t in m.get("topics", []):
                if t not in counts:
                    try:
                        counts[t] = self.log.topic(t).partition_count
                    except FslogError:
                        counts[t] = 0
        return counts

    def _evict_dead(self, state: dict) -> bool:
        t = now_ms()
        dead = [mid for mid, m in state["members"].items()
                if mid != self.member_id and not self.registry.is_alive(m, t)]
        for mid in dead:
            del state["members"][mid]
            path = self.registry.member_lock_path(mid)
            # A hung member (lease expired) still holds its lock: keep the file, so that
            # it is seen alive again once it resumes and re-registers.
            if not is_locked_by_someone(path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        return bool(dead)

    def _rebalance(self, state: dict) -> None:
        members = state["members"]
        result = assign(members, self._counts(members))
        for mid, parts in result.items():
            members[mid]["assigned"] = [list(tp) for tp in parts]
        state["generation"] = int(state.get("generation", 0)) + 1

    def join(self) -> dict:
        if not self._life.try_acquire():
            raise FslogError(f"cannot take the member lock {self._life.path}")

        def change(state):
            refuse_if_served(self.registry)  # network clients of fslog serve hold it
            self._evict_dead(state)
            state["members"][self.member_id] = self._record()
            self._rebalance(state)
            return True
        try:
            state = self.registry.update(change)
        except BaseException:
            self._life.release()  # leave no member file behind (e.g. the disk is full)
            try:
                os.unlink(self._life.path)
            except OSError:
                pass
            raise
        self._thread = threading.Thread(target=self._heartbeats, name="fslog-heartbeat", daemon=True)
        self._thread.start()
        return state

    def heartbeat(self) -> dict:
        def change(state):
            rebalance = self._evict_dead(state)
            me = state["members"].get(self.member_id)
            if me is None:  # we were evicted (e.g. stopped for longer than the session timeout)
                refuse_if_served(self.registry)
                state["members"][self.member_id] = self._record()
                rebalance = True
            else:
                me["last_heartbeat"] = now_ms()
            if rebalance:
                self._rebalance(state)
            return True
        return self.registry.update(change)

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            try:
                self.heartbeat()
            except BaseException as e:  # reported by the consumer's main loop
                self.error = e
                return

    def leave(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

        def change(state):
            if self.member_id not in state["members"]:
                return False
            del state["members"][self.member_id]
            self._evict_dead(state)
            self._rebalance(state)
            return True
        try:
            self.registry.update(change)
        finally:
            self._life.release()
            try:
                os.unlink(self.registry.member_lock_path(self.member_id))
            except FileNotFoundError:
                pass

    # ------------------------------------------------------------ the current assignment
    def assignment(self) -> tuple[int, set[tuple[str, int]]]:
        state = self.registry.read()
        me = state["members"].get(self.member_id)
        parts = {(t, int(p)) for t, p in me.get("assigned", [])} if me else set()
        return int(state.get("generation", 0)), parts
