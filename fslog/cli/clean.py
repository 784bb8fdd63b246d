"""``fslog clean [TOPIC...]``: retention and compaction, for cron (producers also run it
whenever they roll a segment)."""

from __future__ import annotations

from typing import List, Optional

from .params import Argument, Context, Option

HELP = """Apply each topic's cleanup.policy now: delete sealed segments past retention.ms
or retention.bytes (delete), and rewrite sealed segments keeping only the latest record
of each key (compact, when the dirty ratio exceeds min.cleanable.dirty.ratio). The active
segment is never touched; offsets never change; readers and producers may run meanwhile.

Producers run the same cleaning whenever they roll a segment, so a busy topic stays
bounded without cron; 'fslog clean' is for quiet topics and for scripts.

Examples:

  fslog clean                      # every topic

  fslog clean orders --json        # what was removed, as JSON

  0 3 * * *  fslog clean --quiet
"""


def clean(
    ctx: Context,
    topics: Optional[List[str]] = Argument(None, metavar="[TOPIC]...", help="Topics to clean [default: all]."),
    compact_now: bool = Option(False, "--compact-now", help="Compact compacted topics whatever their dirty ratio."),
    json_: bool = Option(False, "--json", help="Print a JSON summary of what was removed."),
    quiet: bool = Option(False, "--quiet", "-q", help="No summary or progress on stderr."),
) -> None:
    from .common import open_log
    from .output import err, print_json
    from .progress import Progress

    log = open_log(ctx, topics=topics or [])
    state = {"done": 0, "total": 0}

    def on_progress(done: int, total: int) -> None:
        state["done"], state["total"] = done, total

    poll = lambda: (state["done"], state["total"], f"{state['done']}/{state['total']} partitions")  # noqa: E731
    with Progress("cleaning", poll, enabled=not quiet):
        report = log.clean(topics or None, compact_now=compact_now, on_progress=on_progress)
    for e in report.errors:
        err(e)
    if json_:
        print_json(report.as_json())
    elif not quiet:
        for p in report.partitions:
            for line in p.recovered:
                err(line)
            where = f"{p.topic}/{p.partition}"
            if p.segments_deleted:
                d = p.segments_deleted
                err(f"{where}: deleted {len(d)} segment(s), {p.bytes_deleted} bytes, offsets "
                    f"{d[0]['base_offset']}..{d[-1]['end_offset'] - 1} "
                    f"({', '.join(sorted({x['reason'] for x in d}))}); log start offset now "
                    f"{p.start_offset}")
            c = p.compaction
            if c and p.compacted and not (p.records_removed
                                          or c["segments_after"] != c["segments_before"]):
                err(f"{where}: compaction found nothing to remove")
            elif c and p.compacted:
                err(f"{where}: compacted {c['segments_before'] - 1} sealed segment(s) into "
                    f"{c['segments_after'] - 1}: removed {c['records_removed']} superseded "
                    f"record(s), {c['tombstones_removed']} tombstone(s)"
                    + (f", {c['keyless_removed']} keyless record(s)" if c["keyless_removed"] else "")
                    + f"; {c['bytes_before']} -> {c['bytes_after']} bytes")
        compacted = sum(1 for p in report.partitions if p.compacted)
        err(f"cleaned {len(report.partitions)} partition(s) of {len(report.topics)} topic(s): "
            f"{report.segments_deleted} segment(s) deleted, {compacted} partition(s) compacted")
    if report.errors:
        raise SystemExit(1)
