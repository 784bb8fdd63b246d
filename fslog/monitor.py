"""What ``fslog top`` shows: samples of a root's topics and groups, and rates between them.

``sample(log)`` reads, without taking any lock, every topic's log-end offsets and every
group's committed offsets, lag and live members (``group_admin.describe_group``).
``view(previous, current)`` turns two samples into the document ``fslog top --json``
prints: the running ``fslog serve`` (address, pid, uptime, connections, requests/s); per topic the produce rate (records/s, from the growth of the log-end offsets),
per group the consume rate (from the growth of the committed offsets), the lag, and the
members with their partitions and lag. Rates are None for the first sample. A group that
cannot be read, or only in part (a damaged committed-offset file), is reported in
``problems`` (one message each) and the rest is shown as usual; so is a partition whose
last background compaction failed (``cleaner-error.json``, as ``fslog status`` shows it:
each topic's ``compaction_failures``, and one problem line each).
Read-only; safe to call from any number of processes.
"""

from __future__ import annotations

import time

from .errors import FslogError
from .groups.admin import describe_groups


def sample(log) -> dict:
    from .storage.cleaner import background_failures, describe_failure
    topics = []
    failures: list[str] = []
    for name in log.topics():
        try:
            t = log.topic(name)
            parts = t.partitions()
            failed = background_failures(t)
            topics.append({"topic": name, "partitions": t.partition_count,
                           "start_offsets": [p.start_offset() for p in parts],
                           "end_offsets": [p.end_offset() for p in parts],
                           "compaction_failures": [dict(partition=n, **f) for n, f in failed]})
            failures.extend(describe_failure(name, n, f) for n, f in failed)
        except FslogError:  # a damaged or vanishing topic must not hide the rest
            continue
    groups, problems = describe_groups(log)  # a damaged group is reported, not hidden
    problems = failures + problems
    from .storage.servers import running_servers
    return {"time": time.time(), "monotonic": time.monotonic(), "topics": topics,
            "groups": groups, "problems": problems, "servers": running_servers(log.root)}


def _rate(now: int, before: int | None, dt: float | None) -> float | None:
    if before is None or not dt or dt <= 0:
        return None
    return round(max(0, now - before) / dt, 2)


def view(previous: dict | None, current: dict) -> dict:
    dt = None if previous is None else current["monotonic"] - previous["monotonic"]
    prev_topics = {t["topic"]: t for t in (previous or {}).get("topics", [])}
    prev_groups = {g["group"]: g for g in (previous or {}).get("groups", [])}
    topics = []
    for t in current["topics"]:
        end = sum(t["end_offsets"])
        p = prev_topics.get(t["topic"])
        topics.append({"topic": t["topic"], "partitions": t["partitions"],
                       "end_offsets": t["end_offsets"], "end_offset_total": end,
                       "records": sum(e - s for s, e in zip(t["start_offsets"], t["end_offsets"])),
                       "produce_rate": _rate(end, sum(p["end_offsets"]) if p else None, dt),
                       "compaction_failures": t.get("compaction_failures", [])})
    groups = []
    for g in current["groups"]:
        committed = {(p["topic"], p["partition"]): p["committed"] for p in g["partitions"]
                     if p["committed"] is not None}
        before = None
        pg = prev_groups.get(g["group"])
        if pg is not None:
            old = {(p["topic"], p["partition"]): p["committed"] for p in pg["partitions"]
                   if p["committed"] is not None}
            before = sum(old.get(tp, c) for tp, c in committed.items())
        lag_of = {(p["topic"], p["partition"]): p["lag"] or 0 for p in g["partitions"]}
        members = []
        for m in g["members"]:
            tps = [(a["topic"], a["partition"]) for a in m["assigned"]]
            members.append({"member_id": m["member_id"], "pid": m["pid"], "host": m["host"],
                            "partitions": [f"{t}/{p}" for t, p in tps],
                            "lag": sum(lag_of.get(tp, 0) for tp in tps)})
        groups.append({"group": g["group"], "generation": g["generation"],
                       "lag": sum(p["lag"] or 0 for p in g["partitions"]),
                       "consume_rate": _rate(sum(committed.values()), before, dt),
                       "members": members, "partitions": g["partitions"]})
    prev_servers = {sv.get("pid"): sv for sv in (previous or {}).get("servers", [])}
    servers = []
    for sv in current.get("servers", []):
        before = prev_servers.get(sv.get("pid"), {}).get("requests")
        rate = _rate(sv.get("requests", 0), before, dt)
        servers.append({"address": sv.get("listen"), "pid": sv.get("pid"),
                        "uptime_s": sv.get("uptime_s"), "connections": sv.get("connections"),
                        # the server counts once a second: between two samples closer than
                        # that, its own figure is the better one
                        "requests_per_s": rate if rate and dt and dt >= 2 else
                        sv.get("requests_per_s"),
                        "requests": sv.get("requests"),
                        "followers": sv.get("followers") or []})
    return {"time": current["time"], "interval": None if dt is None else round(dt, 3),
            "servers": servers, "topics": topics, "groups": groups,
            "problems": list(current.get("problems", []))}
