"""``fslog topic create|list|describe|alter|delete``."""

from __future__ import annotations

from typing import List, Optional

from .common import open_log
from .output import err, print_json, print_table
from .params import Argument, Context, Group, Option

app = Group(help="Create, list, inspect, alter and delete topics.\n\n"
                       "Example: fslog topic create orders --partitions 3; fslog topic describe orders",
                  no_args_is_help=True)


@app.command("create", help="Create a topic.\n\nExample: fslog topic create orders --partitions 3 "
                            "--config retention.ms=86400000")
def create(
    ctx: Context,
    name: str = Argument(..., help="Topic name: [A-Za-z0-9._-], 1 to 249 characters."),
    partitions: int = Option(1, "--partitions", "-p", min=1, help="Number of partitions."),
    config: Optional[List[str]] = Option(None, "--config", "-c", metavar="KEY=VALUE",
                                               help="Topic config (repeatable), e.g. segment.bytes=1048576."),
    if_not_exists: bool = Option(False, "--if-not-exists", help="Succeed if the topic exists already."),
) -> None:
    from ..config import parse_assignments
    log = open_log(ctx, topics=[name])
    existed = log.exists(name)
    t = log.create_topic(name, partitions=partitions, config=parse_assignments(config or []),
                         if_not_exists=if_not_exists)
    if existed:
        err(f"topic {name!r} already exists ({t.partition_count} partitions)")
    else:
        err(f"created topic {name!r} with {partitions} partition{'s' if partitions != 1 else ''}")


@app.command("list", help="List topics.\n\nExample: fslog topic list --json")
def list_(
    ctx: Context,
    json_: bool = Option(False, "--json", help="Print JSON."),
) -> None:
    from ..errors import FslogError
    log = open_log(ctx)
    rows = []
    broken = 0
    for name in log.topics():
        try:
            t = log.topic(name)
        except FslogError as e:  # one damaged topic must not hide the others
            err(str(e))
            broken += 1
            continue
        ends = t.end_offsets()
        rows.append({"name": name, "partitions": t.partition_count,
                     "records": sum(ends.values())})
    if json_:
        print_json(rows)
        if broken:
            raise SystemExit(1)
        return
    print_table(["TOPIC", "PARTITIONS", "END OFFSETS (SUM)"],
                [[r["name"], r["partitions"], r["records"]] for r in rows])
    if broken:
        raise SystemExit(1)


@app.command("describe", help="Show a topic's partitions (start and log-end offsets, sizes, "
                              "segments) and its config.\n\nExample: fslog topic describe orders --json")
def describe(
    ctx: Context,
    name: str = Argument(..., help="Topic name."),
    json_: bool = Option(False, "--json", help="Print JSON."),
) -> None:
    log = open_log(ctx, topics=[name])
    d = log.topic(name).describe()
    if json_:
        print_json(d)
        return
    compacted = "compact" in str(d["config"].get("cleanup.policy"))
    print_table(["PARTITION", "START OFFSET", "END OFFSET", "OFFSETS" if compacted else "RECORDS",
                 "SIZE (BYTES)", "SEGMENTS"]
                + (["DIRTY RATIO"] if compacted else []),
                [[p["partition"], p["start_offset"], p["end_offset"],
                  p["end_offset"] - p["start_offset"], p["size_bytes"], p["segments"]]
                 + ([f"{p['dirty_ratio']:.2f}"] if compacted else [])
                 for p in d["partitions"]], title=f"topic {name}")
    print_table(["CONFIG", "VALUE", "SOURCE"],
                [[k, v, "topic" if k in d["overrides"] else "default"]
                 for k, v in d["config"].items()])


@app.command("alter", help="Change a topic's config: set keys with --config, return keys to their "
                           "defaults with --delete-config. Retention and compaction settings take "
                           "effect at the next clean (a segment roll or fslog clean); segment and "
                           "size settings for producers started afterwards.\n\n"
                           "Example: fslog topic alter orders --config retention.ms=3600000 "
                           "--delete-config retention.bytes")
def alter(
    ctx: Context,
    name: str = Argument(..., help="Topic name."),
    config: Optional[List[str]] = Option(None, "--config", "-c", metavar="KEY=VALUE",
                                               help="Set a config key (repeatable)."),
    delete_config: Optional[List[str]] = Option(None, "--delete-config", metavar="KEY",
                                                      help="Return a key to its default (repeatable)."),
    json_: bool = Option(False, "--json", help="Print the topic's config overrides afterwards as JSON."),
) -> None:
    from ..config import parse_assignments
    log = open_log(ctx, topics=[name])
    t = log.topic(name)
    changes = parse_assignments(config or [])
    was_compacted = t.config.compacted
    t.alter_config(changes, delete_config or [])
    if not was_compacted and t.config.compacted:
        err(f"topic {name!r} is compacted from now on: producers must give every record a key, "
            f"and compaction drops records already written without one")
    if json_:
        print_json(dict(t.config.overrides))
        return
    parts = [f"{k}={v}" for k, v in changes.items()] + [f"{k} (default)" for k in delete_config or []]
    err(f"altered topic {name!r}: {', '.join(parts)}")


@app.command("delete", help="Delete a topic and all its data.\n\nExample: fslog topic delete orders")
def delete(
    ctx: Context,
    name: str = Argument(..., help="Topic name."),
    if_exists: bool = Option(False, "--if-exists", help="Succeed if the topic does not exist."),
) -> None:
    log = open_log(ctx, topics=[name])
    if if_exists and not log.exists(name):
        return
    log.delete_topic(name)
    err(f"deleted topic {name!r}")
