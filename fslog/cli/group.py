"""``fslog group list|describe|reset|delete``."""

from __future__ import annotations

from typing import Optional

from .common import open_log
from .output import err, print_json, print_table
from .params import Argument, Context, Group, Option

app = Group(help="Inspect and manage consumer groups (like kafka-consumer-groups).\n\n"
                       "Example: fslog group describe notify; fslog group reset nightly --topic orders --to-earliest",
                  no_args_is_help=True)


@app.command("list", help="List consumer groups with their live members and total lag.\n\n"
                          "Example: fslog group list --json")
def list_(ctx: Context, json_: bool = Option(False, "--json", help="Print JSON.")) -> None:
    from ..groups.admin import groups_overview
    problems: list[str] = []
    rows = groups_overview(open_log(ctx), problems)
    if json_:
        print_json(rows)
    else:
        print_table(["GROUP", "GENERATION", "MEMBERS", "TOPICS", "LAG"],
                    [[r["group"], r["generation"], r["members"], ",".join(r["topics"]), r["lag"]]
                     for r in rows])
    report_problems(problems)


def report_problems(problems: list[str]) -> None:
    """After the data: one line on stderr per problem found, then exit 1 if there was any."""
    for p in problems:
        err(p)
    if problems:
        raise SystemExit(1)


@app.command("describe", help="Per partition: committed offset, log-end offset, lag and owning "
                              "member.\n\nExample: fslog group describe notify --json")
def describe(ctx: Context, group: str = Argument(..., help="Group name."),
             json_: bool = Option(False, "--json", help="Print JSON.")) -> None:
    from ..groups.admin import describe_group
    d = describe_group(open_log(ctx, groups=[group]), group)
    if json_:
        print_json(d)
        for note in d["notes"]:
            err(note)
        report_problems(d["problems"])
        return
    rows = []
    for p in d["partitions"]:
        m = p["member"]
        unreadable = p["lag"] is None
        rows.append([p["topic"], p["partition"],
                     "unreadable" if unreadable else
                     f"- (stale {p['stale_committed']})" if p["stale_committed"] is not None else
                     "-" if p["committed"] is None else p["committed"],
                     p["end_offset"], "?" if unreadable else p["lag"], m["member_id"] if m else "-",
                     m["pid"] if m else "-", m["host"] if m else "-"])
    print_table(["TOPIC", "PARTITION", "COMMITTED", "END OFFSET", "LAG", "MEMBER", "PID", "HOST"],
                rows, title=f"group {group}, generation {d['generation']}, {len(d['members'])} live member(s)")
    for note in d["notes"]:
        err(note)
    report_problems(d["problems"])


@app.command("reset", help="Move a group's committed offsets. Prints the plan; changes nothing "
                           "without --execute. Refused while the group has live members.\n\n"
                           "Example: fslog group reset nightly --topic orders --to-datetime 2026-11-24T00:00:00Z --execute")
def reset(
    ctx: Context,
    group: str = Argument(..., help="Group name."),
    topic: str = Option(..., "--topic", "-t", help="Topic whose offsets to move."),
    partition: Optional[list[int]] = Option(None, "--partition", "-p", min=0, help="Only this partition (repeatable; default: every partition of the topic)."),
    to_earliest: bool = Option(False, "--to-earliest", help="To the log start offset."),
    to_latest: bool = Option(False, "--to-latest", help="To the log-end offset (skip everything)."),
    to_offset: Optional[int] = Option(None, "--to-offset", help="To this offset (clamped to the log)."),
    to_datetime: Optional[str] = Option(None, "--to-datetime", metavar="TIME", help="To the first record at or after TIME (ISO-8601 or 1h, 2d ago)."),
    shift_by: Optional[int] = Option(None, "--shift-by", help="Move by N (negative: back)."),
    execute: bool = Option(False, "--execute", help="Apply the plan."),
    json_: bool = Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    from ..groups.admin import reset_offsets, reset_plan
    from .timeparse import parse_time_ms
    log = open_log(ctx, topics=[topic], groups=[group])
    plan = reset_plan(log, group, topic, to_earliest=to_earliest, to_latest=to_latest,
                      to_offset=to_offset,
                      to_datetime_ms=parse_time_ms(to_datetime) if to_datetime else None,
                      shift_by=shift_by, partitions=partition or None)
    if execute:
        reset_offsets(log, group, plan)
    if json_:
        print_json({"group": group, "executed": execute, "plan": plan})
    else:
        print_table(["TOPIC", "PARTITION", "OLD OFFSET", "NEW OFFSET"],
                    [[r["topic"], r["partition"],
                      "unreadable" if r["old_unreadable"] else "-" if r["old"] is None else r["old"],
                      r["new"]] for r in plan])
    if execute:
        err(f"reset {len(plan)} partition(s) of group {group!r}")
    else:
        err("nothing changed: add --execute to apply this plan")


@app.command("delete", help="Delete a group and its committed offsets (refused while members are "
                            "live, or while an evicted member's process is stopped or hung).\n\n"
                            "Example: fslog group delete nightly")
def delete(ctx: Context, group: str = Argument(..., help="Group name.")) -> None:
    from ..groups.admin import delete_group
    delete_group(open_log(ctx, groups=[group]), group)
    err(f"deleted group {group!r}")
