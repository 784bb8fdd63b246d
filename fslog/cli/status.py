"""``fslog status``: the root, its topics, and every live member of every group."""

from __future__ import annotations

from typing import Any

from .params import Context, Option

HELP = """Show the root, the running fslog serve (address, pid, uptime, connections,
requests/s), its topics with log-end offsets, and the live members of every consumer
group (ZooKeeper's "which servers are running").

Example: fslog status --json
"""


def status(ctx: Context, json_: bool = Option(False, "--json", help="Print JSON.")) -> None:
    from ..errors import FslogError
    from ..groups.admin import describe_groups
    from ..storage.cleaner import background_failures, describe_failure
    from .common import open_log
    from .group import report_problems
    from .output import print_json, print_table
    log = open_log(ctx)
    topics = []
    problems: list[str] = []
    for name in log.topics():
        try:
            t = log.topic(name)
        except FslogError as e:  # one damaged topic must not hide the rest
            problems.append(str(e))
            continue
        failed = background_failures(t)
        topics.append({"name": name, "partitions": t.partition_count,
                       "end_offsets": [p.end_offset() for p in t.partitions()],
                       "compaction_failures": [dict(partition=n, **f) for n, f in failed]})
        problems.extend(describe_failure(name, n, f) for n, f in failed)
    groups = []
    described, group_problems = describe_groups(log)  # nor one damaged group
    problems.extend(group_problems)
    for d in described:
        groups.append({"group": d["group"], "generation": d["generation"], "members": d["members"],
                       "lag": sum(p["lag"] for p in d["partitions"] if p["lag"] is not None)})
    from ..storage.servers import running_servers
    servers: list[dict[str, Any]] = [{"address": sv.get("listen"), "advertised": sv.get("advertised"),
                "pid": sv.get("pid"), "uptime_s": sv.get("uptime_s"),
                "connections": sv.get("connections"), "requests": sv.get("requests"),
                "requests_per_s": sv.get("requests_per_s"),
                "followers": sv.get("followers") or []}
               for sv in running_servers(log.root)]
    from ..storage.replica import read_follower_state, running_follower
    following = read_follower_state(log.root)
    replication = None
    if following is not None:
        replication = {"role": "follower", "leader": following.get("leader"),
                       "running": running_follower(log.root)}
    doc = {"root": log.root, "servers": servers, "topics": topics, "groups": groups,
           "replication": replication}
    if json_:
        print_json(doc)
        report_problems(problems)
        return
    print(f"root: {log.root}")
    if servers:
        from .top import _fmt_rate, format_uptime
        print_table(["SERVER", "PID", "UPTIME", "CONNECTIONS", "REQUESTS/S"],
                    [[sv["address"], sv["pid"], format_uptime(sv["uptime_s"]), sv["connections"],
                      _fmt_rate(sv["requests_per_s"])] for sv in servers])
    if replication is not None:
        print(f"follower of: {replication['leader']} "
              f"({'replicating: ' + replication['running'] if replication['running'] else 'fslog replicate is not running'})")
    followers = [dict(f, server=sv["address"]) for sv in servers for f in sv["followers"]]
    if followers:
        print_table(["FOLLOWER", "TOPIC", "PARTITION", "OFFSET", "LAG", "LAG MS", "IN SYNC"],
                    [[f["replica_id"], f["topic"], f["partition"], f["offset"], f["lag_records"],
                      f["lag_ms"], "yes" if f["in_sync"] else "no"] for f in followers])
    print_table(["TOPIC", "PARTITIONS", "LOG-END OFFSETS"],
                [[t["name"], t["partitions"], " ".join(map(str, t["end_offsets"]))] for t in topics])
    rows = []
    for g in groups:
        if not g["members"]:
            rows.append([g["group"], g["generation"], "-", "-", "-", "-", g["lag"]])
        for m in g["members"]:
            parts = ",".join(f"{a['topic']}/{a['partition']}" for a in m["assigned"])
            rows.append([g["group"], g["generation"], m["member_id"], m["pid"], m["host"],
                         parts or "-", g["lag"]])
    print_table(["GROUP", "GENERATION", "MEMBER", "PID", "HOST", "PARTITIONS", "LAG"], rows)
    report_problems(problems)
