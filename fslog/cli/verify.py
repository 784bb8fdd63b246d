"""``fslog verify [TOPIC] [--repair]``."""

from __future__ import annotations

from typing import Optional

from .params import Argument, Context, Option

HELP = """Check every batch (CRC, offsets), every index, and report each problem with its
file, byte position and offset. Exit 0 only if all is sound.

--repair truncates a torn tail (a crashed write) and rebuilds indexes; data that is
corrupt in the middle of a log is reported, never silently dropped.

Example: fslog verify orders --repair
"""


def verify(
    ctx: Context,
    topic_name: Optional[str] = Argument(None, metavar="[TOPIC]", help="Topic to check [default: all]."),
    repair: bool = Option(False, "--repair", help="Truncate torn tails and rebuild indexes."),
    json_: bool = Option(False, "--json", help="Print a JSON report."),
) -> None:
    from .common import open_log
    from .output import err, print_json

    log = open_log(ctx, topics=[topic_name] if topic_name else [])
    report = log.verify(topic_name, repair=repair)
    if json_:
        print_json(report.as_json())
    else:
        for t in report.topics:
            for p in t.repaired:
                print(f"repaired: {p['message']}")
            for p in t.problems:
                print(f"problem: {p['message']}")
        n = len(report.topics)
        if report.problems:
            err(f"{len(report.problems)} problem(s) in {n} topic(s)"
                + ("" if repair else "; 'fslog verify --repair' fixes torn tails and indexes"))
        else:
            batches = sum(t.batches for t in report.topics)
            records = sum(t.records for t in report.topics)
            err(f"ok: {n} topic(s), {batches} batches, {records} records"
                + (f", {len(report.repaired)} repair(s)" if report.repaired else ""))
    if report.problems:
        raise SystemExit(1)
