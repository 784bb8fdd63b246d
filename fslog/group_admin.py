"""Inspecting and managing consumer groups: Kafka's ``kafka-consumer-groups`` in a module.

Read-only functions take no lock. ``reset_offsets`` and ``delete_group`` take the group
lock and refuse while the group has live members, so they never race a consumer.
"""

from __future__ import annotations

import os
import shutil
import time

from . import files
from .errors import FslogError, UnknownTopicError
from .reader import offset_for_time
from .registry import Registry, list_groups, now_ms


def _members_view(registry: Registry, state: dict) -> list[dict]:
    t = now_ms()
    out = []
    for m in sorted(state["members"].values(), key=lambda m: m["member_id"]):
        if not registry.is_alive(m, t):
            continue
        out.append({"member_id": m["member_id"], "host": m.get("host"), "pid": m.get("pid"),
                    "start_time": m.get("start_time"), "last_heartbeat": m.get("last_heartbeat"),
                    "topics": m.get("topics", []),
                    "assigned": [{"topic": tp[0], "partition": tp[1]} for tp in m.get("assigned", [])]})
    return out


def describe_group(log, group: str) -> dict:
    """``{"group", "generation", "members": [...], "partitions": [...]}`` with lag per partition."""
    reg = Registry(log.root, group, create=False)
    state = reg.read()
    members = _members_view(reg, state)
    owner = {}
    for m in members:
        for a in m["assigned"]:
            owner[(a["topic"], a["partition"])] = {"member_id": m["member_id"], "pid": m["pid"],
                                                   "host": m["host"]}
    committed = reg.committed_all()
    topics = set(t for t, _ in committed) | {t for m in members for t in m["topics"]}
    parts = []
    for name in sorted(topics):
        try:
            topic = log.topic(name)
        except UnknownTopicError:
            continue
        for p in topic.partitions():
            end = p.end_offset()
            c = committed.get((name, p.number))
            lag = end - c if c is not None else end - p.start_offset()
            parts.append({"topic": name, "partition": p.number, "committed": c,
                          "end_offset": end, "lag": max(0, lag),
                          "member": owner.get((name, p.number))})
    return {"group": group, "generation": int(state.get("generation", 0)), "members": members,
            "partitions": parts}


def groups_overview(log) -> list[dict]:
    out = []
    for g in list_groups(log.root):
        d = describe_group(log, g)
        out.append({"group": g, "generation": d["generation"], "members": len(d["members"]),
                    "topics": sorted({p["topic"] for p in d["partitions"]}),
                    "lag": sum(p["lag"] for p in d["partitions"])})
    return out


def _refuse_if_live(reg: Registry, action: str) -> None:
    live = reg.live_members()
    if live:
        who = ", ".join(f"{m['member_id']} (pid {m.get('pid')})" for m in live[:3])
        raise FslogError(
            f"cannot {action} group {reg.group!r} while it has {len(live)} live member(s): {who}; "
            f"stop them first")


def reset_plan(log, group: str, topic: str, *, to_earliest: bool = False, to_latest: bool = False,
               to_offset: int | None = None, to_datetime_ms: int | None = None,
               shift_by: int | None = None) -> list[dict]:
    """[{"topic", "partition", "old", "new"}] for every partition of ``topic``."""
    chosen = [to_earliest, to_latest, to_offset is not None, to_datetime_ms is not None,
              shift_by is not None]
    if sum(chosen) != 1:
        raise FslogError("choose exactly one of --to-earliest, --to-latest, --to-offset, "
                         "--to-datetime, --shift-by")
    reg = Registry(log.root, group, create=False)
    t = log.topic(topic)
    plan = []
    for p in t.partitions():
        start, end = p.start_offset(), p.end_offset()
        old = reg.committed(topic, p.number)
        if to_earliest:
            new = start
        elif to_latest:
            new = end
        elif to_offset is not None:
            new = to_offset
        elif to_datetime_ms is not None:
            new = offset_for_time(p, to_datetime_ms)
        else:
            new = (old if old is not None else start) + shift_by
        new = min(max(new, start), end)
        plan.append({"topic": topic, "partition": p.number, "old": old, "new": new})
    return plan


def reset_offsets(log, group: str, plan: list[dict]) -> None:
    reg = Registry(log.root, group, create=False)
    with reg._flock:
        _refuse_if_live(reg, "reset offsets of")
        for row in plan:
            reg.commit(row["topic"], row["partition"], row["new"], "fslog group reset")


def delete_group(log, group: str) -> None:
    reg = Registry(log.root, group, create=False)
    with reg._flock:
        _refuse_if_live(reg, "delete")
        trash = os.path.join(log.root, "tmp", f"group-{group}-{os.getpid()}-{time.monotonic_ns()}")
        os.rename(reg.path, trash)
        files.fsync_dir(files.groups_dir(log.root))
    shutil.rmtree(trash, ignore_errors=True)
