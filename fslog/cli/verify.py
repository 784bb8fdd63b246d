"""``fslog verify [TOPIC] [--repair]``."""

from __future__ import annotations

from typing import Optional

import typer

HELP = """Check every batch (CRC, offsets), every index, and report each problem with its
file, byte position and offset. Exit 0 only if all is sound.

--repair truncates a torn tail (a crashed write) and rebuilds indexes; data that is
corrupt in the middle of a log is reported, never silently dropped.

Example: fslog verify orders --repair
"""


def verify(
    ctx: typer.Context,
    topic_name: Optional[str] = typer.Argument(None, metavar="[TOPIC]", help="Topic to check [default: all]."),
    repair: bool = typer.Option(False, "--repair", help="Truncate torn tails and rebuild indexes."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON report."),
) -> None:
    from ..errors import FslogError
    from ..storage.verify import verify_topic
    from .common import open_log
    from .output import err, print_json

    log = open_log(ctx, topics=[topic_name] if topic_name else [])
    names = [topic_name] if topic_name else log.topics()
    reports = []
    for n in names:
        try:
            topic = log.topic(n)
        except FslogError as e:  # an unreadable topic.json: report it, check the others
            if n == topic_name:
                raise  # the one topic asked for (e.g. it does not exist)
            reports.append({"topic": n, "partitions": [], "batches": 0, "records": 0,
                            "problems": [{"kind": "topic", "path": None, "position": None,
                                          "offset": None, "message": str(e)}],
                            "repaired": []})
            continue
        reports.append(verify_topic(topic, repair=repair))
    problems = [p for r in reports for p in r["problems"]]
    repaired = [p for r in reports for p in r["repaired"]]
    if json_:
        print_json({"ok": not problems, "topics": reports})
    else:
        for r in reports:
            for p in r["repaired"]:
                print(f"repaired: {p['message']}")
            for p in r["problems"]:
                print(f"problem: {p['message']}")
        batches = sum(r["batches"] for r in reports)
        records = sum(r["records"] for r in reports)
        if problems:
            err(f"{len(problems)} problem(s) in {len(names)} topic(s)"
                + ("" if repair else "; 'fslog verify --repair' fixes torn tails and indexes"))
        else:
            err(f"ok: {len(names)} topic(s), {batches} batches, {records} records"
                + (f", {len(repaired)} repair(s)" if repaired else ""))
    if problems:
        raise typer.Exit(1)
