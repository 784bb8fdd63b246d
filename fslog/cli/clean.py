"""``fslog clean [TOPIC...]``: retention and compaction, for cron (producers also run it
whenever they roll a segment)."""

from __future__ import annotations

from typing import List, Optional

import typer

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
    ctx: typer.Context,
    topics: Optional[List[str]] = typer.Argument(None, metavar="[TOPIC]...", help="Topics to clean [default: all]."),
    compact_now: bool = typer.Option(False, "--compact-now", help="Compact compacted topics whatever their dirty ratio."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON summary of what was removed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary or progress on stderr."),
) -> None:
    from ..storage.cleaner import clean_partition
    from ..errors import FslogError
    from .common import open_log
    from .output import err, print_json

    log = open_log(ctx, topics=topics or [])
    names = list(topics) if topics else log.topics()
    parts = []
    failed = 0
    work = []
    for n in names:
        try:
            t = log.topic(n)
        except FslogError as e:
            if topics:
                raise
            err(str(e))  # one broken topic must not stop the cleaning of the others
            failed += 1
            continue
        work.extend(t.partitions())
    from .progress import Progress
    state = {"done": 0}
    poll = lambda: (state["done"], len(work), f"{state['done']}/{len(work)} partitions")  # noqa: E731
    with Progress("cleaning", poll, enabled=not quiet and len(work) > 1):
        for p in work:
            try:
                parts.append(clean_partition(p, force_compaction=compact_now))
            except FslogError as e:
                err(str(e))
                failed += 1
            state["done"] += 1
    if json_:
        print_json({
            "partitions": parts,
            "segments_deleted": sum(len(p["segments_deleted"]) for p in parts),
            "bytes_deleted": sum(p["bytes_deleted"] for p in parts),
            "records_removed": sum((p["compaction"] or {}).get("records_removed", 0)
                                   + (p["compaction"] or {}).get("tombstones_removed", 0)
                                   + (p["compaction"] or {}).get("keyless_removed", 0)
                                   for p in parts),
        })
    elif not quiet:
        for p in parts:
            for line in p["recovered"]:
                err(line)
            where = f"{p['topic']}/{p['partition']}"
            if p["segments_deleted"]:
                d = p["segments_deleted"]
                err(f"{where}: deleted {len(d)} segment(s), {p['bytes_deleted']} bytes, offsets "
                    f"{d[0]['base_offset']}..{d[-1]['end_offset'] - 1} "
                    f"({', '.join(sorted({x['reason'] for x in d}))}); log start offset now "
                    f"{p['start_offset']}")
            c = p["compaction"]
            if c and c["ran"] and not (c["records_removed"] or c["tombstones_removed"]
                                       or c["keyless_removed"]
                                       or c["segments_after"] != c["segments_before"]):
                err(f"{where}: compaction found nothing to remove")
            elif c and c["ran"]:
                err(f"{where}: compacted {c['segments_before'] - 1} sealed segment(s) into "
                    f"{c['segments_after'] - 1}: removed {c['records_removed']} superseded "
                    f"record(s), {c['tombstones_removed']} tombstone(s)"
                    + (f", {c['keyless_removed']} keyless record(s)" if c["keyless_removed"] else "")
                    + f"; {c['bytes_before']} -> {c['bytes_after']} bytes")
        deleted = sum(len(p["segments_deleted"]) for p in parts)
        compacted = sum(1 for p in parts if p["compaction"] and p["compaction"]["ran"])
        err(f"cleaned {len(parts)} partition(s) of {len(names)} topic(s): {deleted} segment(s) "
            f"deleted, {compacted} partition(s) compacted")
    if failed:
        raise typer.Exit(1)

