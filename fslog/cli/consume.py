"""``fslog consume TOPIC``: records → stdout."""

from __future__ import annotations

import signal
import sys
import time
from typing import Optional

import typer

HELP = """Write a topic's records to stdout (by default each value and a newline).

Starts at the beginning and exits once caught up with the end each partition had at
start (like kcat -e); --follow keeps waiting for new records.

Examples:

  fslog consume orders > orders.jsonl

  fslog consume orders --format json --last 10

  fslog consume orders --follow --format '%p@%o %k %s'
"""


def consume(
    ctx: typer.Context,
    topic: str = typer.Argument(..., help="Topic to read."),
    partition: Optional[int] = typer.Option(None, "--partition", "-p", min=0, help="Read only this partition."),
    offset: Optional[str] = typer.Option(None, "--offset", "-o", metavar="N|beginning|end|-N",
                                         help="Start offset (per partition): N, beginning, end, or -N for N before the end."),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the beginning (the default; for Kafka users)."),
    last: Optional[int] = typer.Option(None, "--last", "-n", min=0, metavar="N", help="Start N records before the end of each partition."),
    from_time: Optional[str] = typer.Option(None, "--from-time", metavar="TIME", help="Start at the first record at or after TIME (ISO-8601, or 1h, 30m, 2d ago)."),
    max_messages: Optional[int] = typer.Option(None, "--max-messages", "-m", min=0, help="Stop after N records."),
    follow: bool = typer.Option(False, "--follow", "-F", help="Keep waiting for new records until SIGINT/SIGTERM or --idle-timeout."),
    idle_timeout: Optional[float] = typer.Option(None, "--idle-timeout", min=0, metavar="SECONDS", help="With --follow: exit 0 after this long without new records."),
    fmt: str = typer.Option("raw", "--format", "-f", help="raw (values), json, or a template like '%t/%p@%o %k %s'."),
) -> None:
    from ..errors import FslogError
    from ..timeparse import parse_time_ms
    from .common import open_log
    from .output import err

    starts = [x for x in (offset is not None, last is not None, from_time is not None) if x]
    if len(starts) > 1:
        raise FslogError("use only one of --offset, --last and --from-time")
    if from_beginning and starts:
        raise FslogError("--from-beginning cannot be combined with --offset, --last or --from-time")
    if offset is None or offset in ("beginning", "earliest"):
        start = "beginning"
    elif offset in ("end", "latest"):
        start = "end"
    else:
        try:
            start = int(offset)
        except ValueError:
            raise FslogError(f"--offset {offset!r}: use a number, beginning, end, or -N") from None
    if last is not None:
        start = ("last", last)
    if from_time is not None:
        start = ("time", parse_time_ms(from_time))

    log = open_log(ctx)
    t = log.topic(topic)
    if partition is not None and partition >= t.partition_count:
        raise FslogError(f"--partition {partition}: topic {topic!r} has partitions 0..{t.partition_count - 1}")
    from ..reader import TopicReader
    reader = TopicReader(t, partitions=None if partition is None else [partition], start=start,
                         stop_at_end=not follow)
    for n, r in reader.readers.items():
        if r.skipped:
            err(f"{topic}/{n}: {r.skipped} records before offset {r.next_offset} were deleted by retention")

    if fmt == "raw":
        write_batch = _raw_writer()
    elif fmt == "json":
        from .formats import json_line
        write_batch = _record_writer(lambda p, r: json_line(topic, p, r))
    else:
        from .formats import Template
        tpl = Template(fmt)
        write_batch = _record_writer(lambda p, r: tpl.render(topic, p, r))

    stopping = []

    def _on_signal(signum, frame):
        stopping.append(signum)
        if waiting:
            raise _Stopped()

    waiting = False
    old_term = signal.signal(signal.SIGTERM, _on_signal)
    old_int = signal.signal(signal.SIGINT, _on_signal)
    out = sys.stdout.buffer
    remaining = max_messages
    waiter = None
    try:
        last_data = time.monotonic()
        while not stopping:
            batches = reader.fetch()
            if batches:
                for b in batches:
                    stop = reader.stop_offsets[b.partition] if reader.stop_offsets is not None else None
                    remaining = write_batch(out, b, stop, remaining)
                    if remaining == 0:
                        break
                out.flush()
                last_data = time.monotonic()
                if remaining == 0:
                    break
                continue
            if not follow:
                if reader.caught_up():
                    break
                # records up to the stop offsets are not all complete yet (a write in
                # progress): wait a moment for them
                time.sleep(0.005)
                continue
            if waiter is None:
                from ..follow import AppendWaiter
                waiter = AppendWaiter([p.path for p in (t.partition(n) for n in reader.readers)])
                continue  # re-check after the watch is in place
            timeout = None
            if idle_timeout is not None:
                timeout = idle_timeout - (time.monotonic() - last_data)
                if timeout <= 0:
                    break
            waiting = True
            try:
                waiter.wait(timeout)
            except _Stopped:
                break
            finally:
                waiting = False
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        if waiter is not None:
            waiter.close()
        reader.close()
    out.flush()


class _Stopped(Exception):
    pass


def _raw_writer():
    def write(out, b, stop, remaining):
        vals = b.values()
        if stop is not None:
            first = max(b.header.base_offset, b.min_offset)
            if b.header.next_offset > stop:
                vals = vals[:max(0, stop - first)] if b.header.last_offset_delta + 1 == b.header.record_count \
                    else [r.value for r in b.records() if r.offset < stop]
        if remaining is not None and len(vals) > remaining:
            vals = vals[:remaining]
        if not vals:
            return remaining
        if None in vals:
            vals = [v if v is not None else b"" for v in vals]
        out.write(b"\n".join(vals))
        out.write(b"\n")
        return None if remaining is None else remaining - len(vals)
    return write


def _record_writer(render):
    def write(out, b, stop, remaining):
        chunks = []
        for r in b.records():
            if stop is not None and r.offset >= stop:
                break
            if remaining is not None:
                if remaining == 0:
                    break
                remaining -= 1
            chunks.append(render(b.partition, r))
        if chunks:
            out.write(b"".join(chunks))
        return remaining
    return write
