"""Inspecting and managing consumer groups: Kafka's ``kafka-consumer-groups`` in a module.

No function here takes a lock. ``reset_offsets`` and ``delete_group`` refuse while the
group has live members (``delete_group`` also while an evicted member's process still
runs); a member that starts in the instant between that check and the change reads the
offsets as they were or as they are after it, and a member of a deleted group says so
and exits (``GroupDeletedError``).
"""

from __future__ import annotations

import os
import shutil
import time

from ..clock import now_ms
from ..errors import FslogError, UnknownTopicError, UnreadableOffsetError, UsageError
from ..storage import files
from ..storage.reader import offset_for_time
from .registry import Registry, list_groups
from .served import served_view, server_name


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


def _served_members(view: dict) -> list[dict]:
    """The network members serve published, in the shape of ``_members_view``'s rows
    (``pid`` is the server's; ``client_id`` and ``via`` say who and through what)."""
    server = view.get("server") or {}
    out = []
    for m in view.get("members") or []:
        out.append({"member_id": m.get("member_id"), "host": m.get("client_host"),
                    "pid": server.get("pid"), "start_time": m.get("joined_at"),
                    "last_heartbeat": m.get("last_heartbeat"), "topics": m.get("topics", []),
                    "assigned": [{"topic": t, "partition": p} for t, p in m.get("assigned", [])],
                    "client_id": m.get("client_id"),
                    "via": f"fslog serve {server.get('listen', '?')}"})
    return out


def describe_group(log, group: str) -> dict:
    """``{"group", "generation", "members": [...], "partitions": [...], "problems": [...]}``
    with lag per partition. A partition whose committed-offset file is damaged has
    ``committed`` and ``lag`` None and a message in ``problems`` (its file, and the
    ``fslog group reset`` that replaces it); the rest of the group is described as usual."""
    reg = Registry(log.root, group, create=False)
    state = reg.read()
    members = _members_view(reg, state)
    generation = int(state.get("generation", 0))
    served = served_view(reg)
    if served is not None:  # network clients of fslog serve (served.py)
        members += _served_members(served)
        generation = int(served.get("generation", generation))
    owner = {}
    for m in members:
        for a in m["assigned"]:
            owner[(a["topic"], a["partition"])] = {"member_id": m["member_id"], "pid": m["pid"],
                                                   "host": m["host"]}
    damaged: list = []
    committed = reg.committed_all(damaged)
    unreadable = {(e.topic, e.partition): e for e in damaged}
    topics = set(t for t, _ in committed) | {t for m in members for t in m["topics"]} \
        | {t for t, _ in unreadable}
    parts = []
    problems = []
    notes: list[str] = []  # worth saying, not errors (an offset of a deleted topic)
    for name in sorted(topics):
        try:
            topic = log.topic(name)
        except UnknownTopicError:
            continue
        for p in topic.partitions():
            end = p.end_offset()
            c = committed.get((name, p.number))
            stale = None
            if c is not None and (name, p.number) not in unreadable:
                stale = reg.stale_committed(name, p.number, topic)
                if stale is not None:
                    c = None
                    notes.append(
                        f"group {group!r}: the offset {stale} committed for {name}/{p.number} "
                        f"belongs to an earlier topic {name!r} (deleted and re-created since); "
                        f"it is not used: the group reads the new topic from its start")
            lag = end - c if c is not None else end - p.start_offset()
            if (name, p.number) in unreadable:  # unknown: neither 0 nor everything
                lag = None
                problems.append(str(unreadable[(name, p.number)]))
            parts.append({"topic": name, "partition": p.number, "committed": c,
                          "stale_committed": stale,
                          "end_offset": end, "lag": None if lag is None else max(0, lag),
                          "member": owner.get((name, p.number))})
    return {"group": group, "generation": generation, "members": members,
            "partitions": parts, "problems": problems, "notes": notes}


def problem_message(group: str, e: BaseException) -> str:
    """One line for a group that could not be read at all."""
    if isinstance(e, FslogError):
        return str(e)
    filename = getattr(e, "filename", None)
    where = f" ({filename})" if filename else ""
    return f"group {group!r} cannot be read: {getattr(e, 'strerror', None) or e}{where}"


def describe_groups(log) -> tuple[list[dict], list[str]]:
    """``describe_group`` of every group, and the problems found: one bad group (damaged
    offsets, a link, a permission) is reported, never hides the others."""
    out, problems = [], []
    for g in list_groups(log.root):
        try:
            d = describe_group(log, g)
        except (FslogError, OSError) as e:
            problems.append(problem_message(g, e))
            continue
        out.append(d)
        problems.extend(d["problems"])
    return out, problems


def _lag_sum(parts: list[dict]) -> int:
    return sum(p["lag"] for p in parts if p["lag"] is not None)


def groups_overview(log, problems: list | None = None) -> list[dict]:
    """One row per group that can be read; the messages for those that cannot be read, or
    only in part, are appended to ``problems`` (else the first one is raised)."""
    described, found = describe_groups(log)
    if found and problems is None:
        raise FslogError(found[0])
    if problems is not None:
        problems.extend(found)
    return [{"group": d["group"], "generation": d["generation"], "members": len(d["members"]),
             "topics": sorted({p["topic"] for p in d["partitions"]}),
             "lag": _lag_sum(d["partitions"])} for d in described]


def _refuse_if_live(reg: Registry, action: str) -> None:
    served = served_view(reg)
    if served is not None:
        raise FslogError(
            f"cannot {action} group {reg.group!r} while it has "
            f"{len(served.get('members') or [])} network member(s) of {server_name(served)}; "
            f"stop them first")
    live = reg.live_members()
    if live:
        who = ", ".join(f"{m['member_id']} (pid {m.get('pid')})" for m in live[:3])
        raise FslogError(
            f"cannot {action} group {reg.group!r} while it has {len(live)} live member(s): {who}; "
            f"stop them first")


def reset_plan(log, group: str, topic: str, *, to_earliest: bool = False, to_latest: bool = False,
               to_offset: int | None = None, to_datetime_ms: int | None = None,
               shift_by: int | None = None, partitions: list[int] | None = None) -> list[dict]:
    """[{"topic", "partition", "old", "old_unreadable", "new"}] for every partition of
    ``topic`` (or those in ``partitions``). A damaged committed-offset file has ``old``
    None and ``old_unreadable`` True: resetting it is how it gets fixed."""
    chosen = [to_earliest, to_latest, to_offset is not None, to_datetime_ms is not None,
              shift_by is not None]
    if sum(chosen) != 1:
        raise UsageError("choose exactly one of --to-earliest, --to-latest, --to-offset, "
                         "--to-datetime, --shift-by")
    reg = Registry(log.root, group, create=False)
    t = log.topic(topic)
    chosen_parts = t.partitions()
    if partitions:
        missing = sorted(set(partitions) - {p.number for p in chosen_parts})
        if missing:
            n = t.partition_count
            raise UsageError(f"topic {topic!r} has no partition {missing[0]}: its "
                             f"{n} partition(s) are numbered 0 to {n - 1}")
        chosen_parts = [p for p in chosen_parts if p.number in set(partitions)]
    plan = []
    for p in chosen_parts:
        start, end = p.start_offset(), p.end_offset()
        try:
            old, unreadable = reg.committed(topic, p.number, t), False
        except UnreadableOffsetError as e:
            if shift_by is not None:
                raise UnreadableOffsetError(
                    f"{e.path}: the committed offset of {topic}/{p.number} is unreadable, so "
                    f"--shift-by has nothing to shift: use {reg.reset_hint(topic, p.number)}",
                    e.path, topic, p.number) from None
            old, unreadable = None, True
        if to_earliest:
            new = start
        elif to_latest:
            new = end
        elif to_offset is not None:
            new = to_offset
        elif to_datetime_ms is not None:
            new = offset_for_time(p, to_datetime_ms)
        else:
            new = (old if old is not None else start) + (shift_by or 0)
        new = min(max(new, start), end)
        plan.append({"topic": topic, "partition": p.number, "old": old,
                     "old_unreadable": unreadable, "new": new})
    return plan


def reset_offsets(log, group: str, plan: list[dict]) -> None:
    reg = Registry(log.root, group, create=False)
    _refuse_if_live(reg, "reset offsets of")
    for row in plan:
        reg.commit(row["topic"], row["partition"], row["new"], "fslog group reset",
                   log.topic(row["topic"]))


def delete_group(log, group: str) -> None:
    """Delete a group: refused while a member is live, and while a process evicted as hung
    (stopped) still holds its member lock: it would come back to a group that is gone."""
    reg = Registry(log.root, group, create=False)
    _refuse_if_live(reg, "delete")
    held = reg.held_member_locks()
    if held:
        raise FslogError(
            f"cannot delete group {group!r}: member {held[0]} was evicted but its process still "
            f"runs (stopped or hung: it holds {reg.member_lock_path(held[0])}); resume it and "
            f"stop it, or kill it, first")
    files.ensure_dir(files.tmp_dir(log.root), log.root)  # never staged through a link
    trash = os.path.join(files.tmp_dir(log.root), files.fit_name(
        f"group-{group}", f"-{os.getpid()}-{time.monotonic_ns()}"))
    os.rename(reg.path, trash)
    files.fsync_dir(files.groups_dir(log.root))
    shutil.rmtree(trash, ignore_errors=True)
