"""The group coordinator for network clients: Kafka's classic group protocol.

``fslog serve`` is the coordinator of every group its clients form (FindCoordinator
answers this node). A group moves through Kafka's states::

    Empty --join--> PreparingRebalance --all members joined, or the rebalance
    timeout--> CompletingRebalance --the leader's SyncGroup--> Stable
    Stable/CompletingRebalance --a join, a leave, an expired session--> PreparingRebalance
    PreparingRebalance --no members left--> Empty

- JoinGroup waits until every known member has joined again, or until the largest
  rebalance timeout of the members has passed (members that have not joined by then are
  removed); a group that was Empty first waits ``group.initial.rebalance.delay.ms`` so
  members starting together land in one generation. Completing a join bumps the
  generation, picks the protocol every member supports that most members prefer, and
  gives the leader every member's metadata. v4+ clients without a member id get
  MEMBER_ID_REQUIRED and a new id, and must join again with it.
- SyncGroup hands each member what the leader assigned to it.
- A member that sends nothing (heartbeat, sync, commit) within its own session timeout
  is removed, and the group rebalances. One timer per member (``loop.call_later``),
  re-armed on each request; no polling.

Membership lives in memory (a restarted server answers UNKNOWN_MEMBER_ID and the clients
join again); committed offsets are the CLI's files (``groups/registry.py``), so the CLI
and network clients share them. While a group has network members, serve holds its
``served.lock`` (``groups/served.py``): the CLI shows the members and refuses to join,
and a JoinGroup for a group with live ``fslog consume`` members is refused with
INCONSISTENT_GROUP_PROTOCOL. Kafka's group metadata topic has no counterpart: nothing
but offsets survives a restart.

Runs on the server's event loop thread only; file work (claims, offsets) goes through
the server's worker threads. Committed offsets are read and written by
``group_offsets.py``, the admin view of groups (list, describe, delete) is
``group_admin.py``, the consumer protocol's bytes are ``consumer_protocol.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import NamedTuple

from kio.schema.errors import ErrorCode

from ..errors import FslogError, InvalidNameError
from ..groups.registry import Registry
from ..groups.served import GroupInUseError, ServedClaim
from ..storage import files
from .consumer_protocol import assignment_partitions, subscription_topics
from .group_offsets import GroupOffsets

EMPTY = "Empty"
PREPARING = "PreparingRebalance"
COMPLETING = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"

# Kafka's broker defaults
MIN_SESSION_TIMEOUT_MS = 6000        # group.min.session.timeout.ms
MAX_SESSION_TIMEOUT_MS = 1800000     # group.max.session.timeout.ms
INITIAL_REBALANCE_DELAY_MS = 3000    # group.initial.rebalance.delay.ms


class JoinResult(NamedTuple):
    error: ErrorCode
    member_id: str = ""
    generation: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: tuple = ()  # (member id, group instance id, metadata), for the leader only


class SyncResult(NamedTuple):
    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


class Member:
    __slots__ = (
        "assignment",
        "client_host",
        "client_id",
        "instance_id",
        "join_future",
        "joined_at",
        "member_id",
        "protocols",
        "rebalance_ms",
        "session_ms",
        "sync_future",
        "timer",
    )

    def __init__(self, member_id: str, instance_id, client_id: str, client_host: str,
                 session_ms: int, rebalance_ms: int, protocols: list[tuple[str, bytes]]):
        self.member_id = member_id
        self.instance_id = instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.session_ms = session_ms
        self.rebalance_ms = rebalance_ms
        self.protocols = protocols
        self.join_future: asyncio.Future | None = None
        self.sync_future: asyncio.Future | None = None
        self.assignment = b""
        self.timer: asyncio.TimerHandle | None = None
        self.joined_at = int(time.time() * 1000)

    def metadata(self, protocol: str) -> bytes:
        for name, meta in self.protocols:
            if name == protocol:
                return meta
        return b""


class Group:
    def __init__(self, group_id: str):
        self.group_id = group_id
        self.state = EMPTY
        self.generation = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader: str | None = None
        self.members: dict[str, Member] = {}
        self.pending: dict[str, asyncio.TimerHandle] = {}  # ids handed out (MEMBER_ID_REQUIRED)
        self.join_timer: asyncio.TimerHandle | None = None
        self.initial_delay = False
        self.claim: ServedClaim | None = None
        self.claim_lock = asyncio.Lock()

    def candidates(self, exclude: str | None = None) -> set[str] | None:
        """Protocols every member (but ``exclude``) supports; None with no such member."""
        out = None
        for m in self.members.values():
            if m.member_id == exclude:
                continue
            names = {n for n, _ in m.protocols}
            out = names if out is None else out & names
        return out


def valid_group_id(group_id) -> bool:
    try:
        files.validate_name(group_id, "group")
        return True
    except (InvalidNameError, TypeError):
        return False


class Coordinator:
    def __init__(self, server):
        self.server = server
        self.loop: asyncio.AbstractEventLoop = server.loop
        self.logger: logging.Logger = server.logger
        cfg = server.config
        self.initial_delay_ms = getattr(cfg, "group_initial_rebalance_delay_ms",
                                        INITIAL_REBALANCE_DELAY_MS)
        self.min_session_ms = getattr(cfg, "group_min_session_timeout_ms", MIN_SESSION_TIMEOUT_MS)
        self.max_session_ms = getattr(cfg, "group_max_session_timeout_ms", MAX_SESSION_TIMEOUT_MS)
        self.groups: dict[str, Group] = {}
        self.offsets = GroupOffsets(server.log, self.logger)

    @property
    def root(self) -> str:
        return self.server.log.root

    def _info(self, msg: str, *args) -> None:
        self.logger.info("serve: " + msg, *args)

    # ------------------------------------------------------------ claims (served.lock)
    def _server_info(self) -> dict:
        import os
        import socket
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "listen": self.server.listen_address}

    def _claim(self, group_id: str) -> ServedClaim:
        """Blocking: take the group for network clients (GroupInUseError if CLI members
        read it)."""
        claim = ServedClaim(Registry(self.root, group_id), self._server_info())
        claim.acquire()
        return claim

    async def ensure_claimed(self, g: Group) -> ErrorCode:
        if g.claim is not None and g.claim.held:
            return ErrorCode.none
        async with g.claim_lock:
            if g.claim is not None and g.claim.held:
                return ErrorCode.none
            try:
                g.claim = await self.server.run_blocking(self._claim, g.group_id)
            except GroupInUseError as e:
                self.logger.warning("serve: JoinGroup %r refused (INCONSISTENT_GROUP_PROTOCOL): %s",
                                    g.group_id, e)
                return ErrorCode.inconsistent_group_protocol
            except (FslogError, OSError) as e:
                self.logger.warning("serve: group %r cannot be used: %s", g.group_id, e)
                return ErrorCode.coordinator_not_available
            self._publish(g)
            return ErrorCode.none

    def _release_if_idle(self, g: Group) -> None:
        if g.members or g.pending or g.claim is None:
            return
        g.claim.release()
        g.claim = None

    def _publish(self, g: Group) -> None:
        if g.claim is None or not g.claim.held:
            return
        members = []
        for m in g.members.values():
            meta = m.metadata(g.protocol_name) if g.protocol_name else \
                (m.protocols[0][1] if m.protocols else b"")
            consumer = g.protocol_type == "consumer"
            members.append({
                "member_id": m.member_id, "client_id": m.client_id,
                "client_host": m.client_host, "joined_at": m.joined_at,
                "topics": subscription_topics(meta) if consumer else [],
                "assigned": [list(tp) for tp in assignment_partitions(m.assignment)]
                if consumer and g.state == STABLE else []})
        g.claim.publish({"group": g.group_id, "generation": g.generation, "state": g.state,
                         "protocol_type": g.protocol_type, "protocol": g.protocol_name,
                         "members": members})

    # ------------------------------------------------------------ timers
    def _arm_session(self, g: Group, m: Member) -> None:
        if m.timer is not None:
            m.timer.cancel()
        m.timer = self.loop.call_later(m.session_ms / 1000, self._session_expired, g,
                                       m.member_id)

    def _session_expired(self, g: Group, member_id: str) -> None:
        m = g.members.get(member_id)
        if m is None or m.join_future is not None:
            return
        self._info("group %r: member %s sent nothing within its session timeout of %d ms; "
                   "removed", g.group_id, member_id, m.session_ms)
        self._remove(g, m)

    def _pending_expired(self, g: Group, member_id: str) -> None:
        if g.pending.pop(member_id, None) is not None:
            self._maybe_complete_join(g)
            self._release_if_idle(g)

    # ------------------------------------------------------------ the state machine
    def group(self, group_id: str) -> Group:
        g = self.groups.get(group_id)
        if g is None:
            g = self.groups[group_id] = Group(group_id)
        return g

    def join(self, g: Group, member_id: str, instance_id, client_id: str, client_host: str,
             session_ms: int, rebalance_ms: int, protocol_type: str,
             protocols: list[tuple[str, bytes]], version: int):
        """A JoinResult now, or a future of one."""
        if not (self.min_session_ms <= session_ms <= self.max_session_ms):
            return JoinResult(ErrorCode.invalid_session_timeout, member_id)
        if rebalance_ms < 0:  # v0: no rebalance timeout, Kafka takes the session timeout
            rebalance_ms = session_ms
        names = [n for n, _ in protocols]
        if not protocol_type or not protocols:
            return JoinResult(ErrorCode.inconsistent_group_protocol, member_id)
        if g.members:
            cands = g.candidates(exclude=member_id)
            if protocol_type != g.protocol_type or (cands is not None and not cands & set(names)):
                return JoinResult(ErrorCode.inconsistent_group_protocol, member_id)
        if not member_id:
            new_id = f"{client_id or 'member'}-{uuid.uuid4()}"
            if version >= 4:
                g.pending[new_id] = self.loop.call_later(session_ms / 1000,
                                                         self._pending_expired, g, new_id)
                return JoinResult(ErrorCode.member_id_required, new_id)
            return self._add(g, new_id, instance_id, client_id, client_host, session_ms,
                             rebalance_ms, protocol_type, protocols)
        timer = g.pending.pop(member_id, None)
        if timer is not None:
            timer.cancel()
            return self._add(g, member_id, instance_id, client_id, client_host, session_ms,
                             rebalance_ms, protocol_type, protocols)
        m = g.members.get(member_id)
        if m is None:
            return JoinResult(ErrorCode.unknown_member_id, member_id)
        changed = m.protocols != protocols
        m.protocols, m.session_ms, m.rebalance_ms = protocols, session_ms, rebalance_ms
        if g.state == PREPARING:
            return self._await_join(g, m)
        if g.state == COMPLETING and not changed:
            return self._join_result(g, m)  # the answer it missed, again
        if g.state == STABLE and not changed and m.member_id != g.leader:
            return self._join_result(g, m)
        self._prepare(g, f"member {member_id} joined again")
        return self._await_join(g, m)

    def _add(self, g, member_id, instance_id, client_id, client_host, session_ms,
             rebalance_ms, protocol_type, protocols):
        m = Member(member_id, instance_id, client_id, client_host, session_ms, rebalance_ms,
                   protocols)
        g.members[member_id] = m
        if g.protocol_type is None or len(g.members) == 1:
            g.protocol_type = protocol_type
        if g.leader is None:
            g.leader = member_id
        self._info("group %r: member %s (client %r, %s) joined", g.group_id, member_id,
                   client_id, client_host)
        fut = self._await_join(g, m, check=False)
        if g.state != PREPARING:
            self._prepare(g, f"member {member_id} joined")
        self._maybe_complete_join(g)
        self._publish(g)
        return fut

    def _await_join(self, g: Group, m: Member, check: bool = True) -> asyncio.Future:
        if m.join_future is not None and not m.join_future.done():
            # the client gave up on its earlier JoinGroup and sent another
            m.join_future.set_result(JoinResult(ErrorCode.rebalance_in_progress, m.member_id))
        m.join_future = self.loop.create_future()
        if m.timer is not None:  # a member waiting for the join is alive
            m.timer.cancel()
            m.timer = None
        fut = m.join_future
        if check:
            self._maybe_complete_join(g)
        return fut

    def _prepare(self, g: Group, reason: str) -> None:
        if g.state == COMPLETING:
            for m in g.members.values():
                if m.sync_future is not None and not m.sync_future.done():
                    m.sync_future.set_result(SyncResult(ErrorCode.rebalance_in_progress))
                m.sync_future = None
        initial = g.state == EMPTY
        g.state = PREPARING
        if g.join_timer is not None:
            g.join_timer.cancel()
        rebalance_ms = max((m.rebalance_ms for m in g.members.values()), default=0)
        if initial and self.initial_delay_ms > 0:
            g.initial_delay = True
            delay = min(self.initial_delay_ms, max(rebalance_ms, 1))
        else:
            g.initial_delay = False
            delay = rebalance_ms
        g.join_timer = self.loop.call_later(delay / 1000, self._join_timer_fired, g)
        self._info("group %r: preparing a rebalance (%s)", g.group_id, reason)
        self._publish(g)

    def _join_timer_fired(self, g: Group) -> None:
        g.join_timer = None
        if g.state != PREPARING:
            return
        if g.initial_delay:
            g.initial_delay = False
            if self._all_joined(g):
                self._complete_join(g)
            else:
                rebalance_ms = max((m.rebalance_ms for m in g.members.values()), default=0)
                g.join_timer = self.loop.call_later(rebalance_ms / 1000, self._join_timer_fired, g)
            return
        self._complete_join(g)

    def _all_joined(self, g: Group) -> bool:
        return not g.pending and all(m.join_future is not None for m in g.members.values())

    def _maybe_complete_join(self, g: Group) -> None:
        if g.state == PREPARING and not g.initial_delay and self._all_joined(g):
            self._complete_join(g)

    def _complete_join(self, g: Group) -> None:
        if g.join_timer is not None:
            g.join_timer.cancel()
            g.join_timer = None
        for m in [m for m in g.members.values() if m.join_future is None]:
            self._info("group %r: member %s did not join again within the rebalance "
                       "timeout of %d ms; removed", g.group_id, m.member_id, m.rebalance_ms)
            self._drop(g, m)
        g.generation += 1
        if not g.members:
            g.state = EMPTY
            g.protocol_name = None
            g.leader = None
            self._info("group %r: generation %d is empty", g.group_id, g.generation)
            self._publish(g)
            self._release_if_idle(g)
            return
        g.protocol_name = self._select_protocol(g)
        if g.leader not in g.members:
            g.leader = next(iter(g.members))
        g.state = COMPLETING
        for m in g.members.values():
            fut, m.join_future = m.join_future, None
            if fut is not None and not fut.done():
                fut.set_result(self._join_result(g, m))
            self._arm_session(g, m)
        self._info("group %r: generation %d with %d member(s), protocol %s, leader %s",
                   g.group_id, g.generation, len(g.members), g.protocol_name, g.leader)
        self._publish(g)

    def _select_protocol(self, g: Group) -> str:
        cands = g.candidates() or set()
        votes: dict[str, int] = {}
        order: list[str] = []
        for m in g.members.values():
            for name, _ in m.protocols:
                if name in cands:
                    votes[name] = votes.get(name, 0) + 1
                    if name not in order:
                        order.append(name)
                    break
        return max(order, key=lambda n: (votes[n], -order.index(n)))

    def _join_result(self, g: Group, m: Member) -> JoinResult:
        members: tuple = ()
        if m.member_id == g.leader:
            members = tuple((x.member_id, x.instance_id, x.metadata(g.protocol_name or ""))
                            for x in g.members.values())
        return JoinResult(ErrorCode.none, m.member_id, g.generation, g.protocol_type,
                          g.protocol_name, g.leader or "", members)

    def _drop(self, g: Group, m: Member) -> None:
        """Take a member out (no rebalance decided here)."""
        if m.timer is not None:
            m.timer.cancel()
        g.members.pop(m.member_id, None)
        for fut, result in ((m.join_future, JoinResult(ErrorCode.unknown_member_id, m.member_id)),
                            (m.sync_future, SyncResult(ErrorCode.unknown_member_id))):
            if fut is not None and not fut.done():
                fut.set_result(result)
        m.join_future = m.sync_future = None
        if g.leader == m.member_id:
            g.leader = next(iter(g.members), None)

    def _remove(self, g: Group, m: Member) -> None:
        """A member left or expired: rebalance the rest."""
        self._drop(g, m)
        if g.state in (STABLE, COMPLETING):
            self._prepare(g, f"member {m.member_id} left")
        self._maybe_complete_join(g)
        self._publish(g)
        self._release_if_idle(g)

    def sync(self, g: Group | None, generation: int, member_id: str, protocol_type,
             protocol_name, assignments: dict[str, bytes]):
        """A SyncResult now, or a future of one."""
        if g is None or member_id not in g.members:
            return SyncResult(ErrorCode.unknown_member_id)
        if generation != g.generation:
            return SyncResult(ErrorCode.illegal_generation)
        if (protocol_type is not None and protocol_type != g.protocol_type) or \
                (protocol_name is not None and protocol_name != g.protocol_name):
            return SyncResult(ErrorCode.inconsistent_group_protocol)
        if g.state == PREPARING:
            return SyncResult(ErrorCode.rebalance_in_progress)
        m = g.members[member_id]
        self._arm_session(g, m)
        if g.state == STABLE:
            return SyncResult(ErrorCode.none, m.assignment, g.protocol_type, g.protocol_name)
        # CompletingRebalance
        if m.sync_future is not None and not m.sync_future.done():
            m.sync_future.set_result(SyncResult(ErrorCode.rebalance_in_progress))
        fut = m.sync_future = self.loop.create_future()
        if member_id == g.leader:
            for x in g.members.values():
                x.assignment = assignments.get(x.member_id, b"")
            g.state = STABLE
            for x in g.members.values():
                f, x.sync_future = x.sync_future, None
                if f is not None and not f.done():
                    f.set_result(SyncResult(ErrorCode.none, x.assignment, g.protocol_type,
                                            g.protocol_name))
            self._info("group %r: generation %d is stable", g.group_id, g.generation)
            self._publish(g)
        return fut

    def heartbeat(self, g: Group | None, generation: int, member_id: str) -> ErrorCode:
        if g is None or member_id not in g.members:
            return ErrorCode.unknown_member_id
        if generation != g.generation:
            return ErrorCode.illegal_generation
        m = g.members[member_id]
        if m.join_future is None:
            self._arm_session(g, m)
        if g.state == PREPARING:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def leave(self, g: Group | None, member_ids: list[str]) -> list[ErrorCode]:
        out = []
        for member_id in member_ids:
            if g is None:
                out.append(ErrorCode.unknown_member_id)
                continue
            timer = g.pending.pop(member_id, None)
            if timer is not None:
                timer.cancel()
                out.append(ErrorCode.none)
                continue
            m = g.members.get(member_id)
            if m is None:
                out.append(ErrorCode.unknown_member_id)
                continue
            self._info("group %r: member %s left", g.group_id, member_id)
            self._remove(g, m)
            out.append(ErrorCode.none)
        if g is not None:
            self._maybe_complete_join(g)
            self._release_if_idle(g)
        return out

    # ------------------------------------------------------------ committed offsets
    def commit_check(self, g: Group | None, generation: int, member_id: str) -> ErrorCode | None:
        """None: commit as a member of the group; ErrorCode.none: commit as a client
        outside any group (generation -1, Kafka's "simple" consumer); else the error."""
        if generation < 0 and not member_id and (g is None or not g.members):
            return ErrorCode.none
        if g is None:
            return ErrorCode.unknown_member_id
        if g.state == COMPLETING:
            return ErrorCode.rebalance_in_progress
        m = g.members.get(member_id)
        if m is None:
            return ErrorCode.unknown_member_id
        if generation != g.generation:
            return ErrorCode.illegal_generation
        if m.join_future is None:
            self._arm_session(g, m)
        return None



def coordinator_of(server) -> Coordinator:
    """The server's coordinator, made on first use (event loop thread)."""
    c = getattr(server, "_group_coordinator", None)
    if c is None:
        c = server._group_coordinator = Coordinator(server)
    return c
