"""A group coordinated by ``fslog serve``: the marker that lets the CLI see it.

Network clients (kafka-python, librdkafka, ...) form a group through ``fslog serve``,
which keeps their membership in memory (Kafka's classic protocol) but commits their
offsets into the very files the CLI's groups use (``registry.py``). While serve has
members in a group it holds a lock on one more file in the group's directory::

    ROOT/groups/G/served.lock   flock held by fslog serve while the group has network
                                members; its content is one JSON document: the server
                                (pid, host, listen address), the generation, the state,
                                the protocol, and every member (id, client id, client
                                host, topics, assigned partitions), rewritten at every
                                change of the group

``served.lock`` is how the rest of fslog sees a served group: ``group describe``, ``group
list``, ``status`` and ``top`` show its members and owners (``served_view``); ``group
reset`` and ``group delete`` are refused while it is held, as for live CLI members; and
a CLI member (``fslog consume --group G``) refuses to join it (``refuse_if_served``),
naming the server. The kernel drops the lock when serve dies, however it dies, so a stale
file is never taken for a served group.

Neither side ever joins a group the other one is reading: a claim by serve and a join by
a CLI member are both changes of ``registry.json`` (``Registry.update``). Serve takes
``served.lock`` and then, in its update, checks for live CLI members (and gives the lock
back if there are any); a CLI member, in its update, checks the lock. Whichever update
comes second sees the other side. Serve's update also records ``served_by`` in
the registry, so the two updates conflict: updates are compare-and-swap (registry.py),
and the second to link its version computes its change again and sees the first. So two readers never share a partition across the boundary.

Used by the broker (one thread at a time per group) and by any number of CLI processes.
"""

from __future__ import annotations

import os

from ..clock import now_ms
from ..errors import FslogError
from ..storage.locks import ProcessLock, read_published
from .registry import Registry

SERVED_FILE = "served.lock"


class GroupInUseError(FslogError):
    """The group is in use by the other kind of member (CLI members vs. network clients)."""


def served_lock_path(registry: Registry) -> str:
    return os.path.join(registry.path, SERVED_FILE)


def _describe_cli_members(live: list[dict]) -> str:
    return ", ".join(f"{m['member_id']} (pid {m.get('pid')})" for m in live[:3])


class ServedClaim:
    """serve's hold on a group (``served.lock``) while the group has network members."""

    def __init__(self, registry: Registry, server: dict):
        self.registry = registry
        self.server = dict(server)
        self._lock = ProcessLock(served_lock_path(registry))

    def acquire(self) -> None:
        """Take the group for network clients, or raise GroupInUseError when CLI members
        are reading it. Does file I/O (fsync): call from a worker thread."""
        if not self._lock.try_acquire():
            raise GroupInUseError(f"group {self.registry.group!r} is served by another process "
                                  f"({served_lock_path(self.registry)} is locked)")

        def change(state):
            t = now_ms()
            live = [m for m in state["members"].values() if self.registry.is_alive(m, t)]
            if live:
                raise GroupInUseError(
                    f"group {self.registry.group!r} has {len(live)} live fslog consume "
                    f"member(s) ({_describe_cli_members(live)}); network clients cannot join "
                    f"it until they stop")
            state["served_by"] = dict(self.server, since=t)
            return True
        try:
            self.registry.update(change)
        except BaseException:
            self._lock.release()
            raise

    def publish(self, view: dict) -> None:
        """Rewrite the marker's content (what ``served_view`` reads)."""
        self._lock.publish_json(dict(view, server=self.server))

    def release(self) -> None:
        self._lock.release_clearing()

    @property
    def held(self) -> bool:
        return self._lock.held


def served_view(registry: Registry) -> dict | None:
    """What serve published about the group, None when no server holds it. Takes no lock;
    a read racing a rewrite is read again."""
    view = read_published(served_lock_path(registry))
    if view is None:
        return None
    return view or {"members": [], "server": {}}


def server_name(view: dict) -> str:
    s = view.get("server") or {}
    return f"fslog serve at {s.get('listen', '?')} (pid {s.get('pid', '?')})"


def refuse_if_served(registry: Registry) -> None:
    """For a CLI member about to join (inside its ``Registry.update``): one line naming
    the server when network clients hold the group."""
    view = served_view(registry)
    if view is not None:
        n = len(view.get("members") or [])
        raise GroupInUseError(
            f"group {registry.group!r} is in use by {n} network client(s) of "
            f"{server_name(view)}; fslog consume cannot join it while they are members "
            f"(use another group, or stop them)")


def commit_outside_members(registry: Registry, offsets: list[tuple[str, int, int]],
                           who: str) -> None:
    """Commit offsets for a client that is no member of the group (Kafka's "simple"
    consumer: generation -1), as ``group reset`` does: refused with GroupInUseError while
    CLI members are reading the group (checked first: the registry has no lock, see
    registry.py; a member joining in that instant reads the offsets before or after)."""
    live = registry.live_members()
    if live:
        raise GroupInUseError(
            f"group {registry.group!r} has {len(live)} live fslog consume member(s) "
            f"({_describe_cli_members(live)}); a client outside the group cannot commit "
            f"its offsets meanwhile")
    for topic, partition, offset in offsets:
        registry.commit(topic, partition, offset, who)
