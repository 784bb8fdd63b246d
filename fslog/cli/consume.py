"""``fslog consume TOPIC...``: records → stdout, alone or as a member of a group."""

from __future__ import annotations

import signal
import sys
import time
from typing import List, Optional

import typer

from ..errors import CorruptRecordError

HELP = """Write records to stdout (by default each value and a newline).

Without --group: reads every partition from the start (or --offset/--last/--from-time)
and exits once caught up with the end each partition had at start (like kcat -e).

With --group G: joins consumer group G, reads only the partitions assigned to this
member, each from the group's committed offset, and commits what it has written and
flushed (at least every second and at exit): at-least-once. Members share a topic's
partitions; a member that joins, leaves or dies triggers a rebalance.

--follow keeps waiting for new records until SIGINT/SIGTERM or --idle-timeout.

Examples:

  fslog consume orders > orders.jsonl

  fslog consume orders --format json --last 10

  fslog consume orders --group notify --follow

  0 * * * *  fslog consume orders --group nightly >> nightly.jsonl

  fslog consume orders --group billing --exec './bill.sh' --retries 3 --dead-letter orders.failed

--exec CMD runs CMD once per record (or --batch N records), the record on stdin, and with
--group commits it only after CMD exited 0: at-least-once processing from the shell
(see docs/groups.md). Without --group nothing is committed.
"""


def consume(
    ctx: typer.Context,
    topics: List[str] = typer.Argument(..., metavar="TOPIC...", help="Topic(s) to read."),
    group: Optional[str] = typer.Option(None, "--group", "-g", help="Consume as a member of this consumer group."),
    partition: Optional[int] = typer.Option(None, "--partition", "-p", min=0, help="Read only this partition (not with --group)."),
    offset: Optional[str] = typer.Option(None, "--offset", "-o", metavar="N|beginning|end|-N",
                                         help="Start offset (per partition): N, beginning, end, or -N for N before the end. "
                                              "With --group: 'end' makes a group without committed offsets start at the end."),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the beginning (the default; for Kafka users)."),
    last: Optional[int] = typer.Option(None, "--last", "-n", min=0, metavar="N", help="Start N records before the end of each partition."),
    from_time: Optional[str] = typer.Option(None, "--from-time", metavar="TIME", help="Start at the first record at or after TIME (ISO-8601, or 1h, 30m, 2d ago)."),
    max_messages: Optional[int] = typer.Option(None, "--max-messages", "-m", min=0, help="Stop after N records."),
    follow: bool = typer.Option(False, "--follow", "-F", help="Keep waiting for new records until SIGINT/SIGTERM or --idle-timeout."),
    idle_timeout: Optional[float] = typer.Option(None, "--idle-timeout", min=0, metavar="SECONDS", help="With --follow: exit 0 after this long without new records."),
    fmt: str = typer.Option("raw", "--format", "-f", help="raw (values), json, or a template like '%t/%p@%o %k %s'."),
    skip_corrupt: bool = typer.Option(False, "--skip-corrupt", help="Step over damaged data (reported on stderr with file, position and offsets) instead of stopping."),
    session_timeout: float = typer.Option(10.0, "--session-timeout", min=0.5, metavar="SECONDS", help="With --group: a member whose heartbeats stop for this long is evicted."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress line or summary on stderr (shown only on a terminal anyway)."),
    exec_: Optional[str] = typer.Option(None, "--exec", "-x", metavar="CMD",
                                        help="Run CMD (through sh -c) once per record, the record on stdin (as --format prints it), "
                                             "FSLOG_TOPIC, FSLOG_PARTITION, FSLOG_OFFSET, FSLOG_KEY, FSLOG_TIMESTAMP, FSLOG_HEADER_<NAME> in its "
                                             "environment; with --group, a record is committed only after CMD exited 0. "
                                             "Example: --exec './notify.sh'"),
    exec_argv: bool = typer.Option(False, "--exec-argv", help="Split --exec into words like a shell would, and run it without a shell."),
    retries: int = typer.Option(0, "--retries", min=0, metavar="N", help="With --exec: run a failed command up to N more times, with backoff."),
    retry_backoff: float = typer.Option(0.1, "--retry-backoff", min=0, metavar="SECONDS", help="With --exec: wait this long before the first retry, doubling each time."),
    retry_backoff_max: float = typer.Option(10.0, "--retry-backoff-max", min=0, metavar="SECONDS", help="With --exec: the longest wait between retries."),
    exec_timeout: Optional[float] = typer.Option(None, "--exec-timeout", min=0.001, metavar="SECONDS", help="With --exec: a command running longer has failed (it gets SIGTERM, then SIGKILL)."),
    dead_letter: Optional[str] = typer.Option(None, "--dead-letter", metavar="TOPIC", help="With --exec: after the last attempt, write the record to TOPIC (headers fslog.errors.*: why) and go on; "
                                                                                          "without it fslog stops with exit 1 and the record is not committed."),
    batch: int = typer.Option(1, "--batch", min=1, metavar="N", help="With --exec: give CMD up to N records of one partition at once, one per line; committed together."),
    concurrency: int = typer.Option(1, "--concurrency", "-j", min=1, metavar="K", help="With --exec: run up to K commands at once (never two for one partition: order per partition is kept)."),
    shutdown_timeout: float = typer.Option(30.0, "--shutdown-timeout", min=0, metavar="SECONDS", help="With --exec: on SIGINT/SIGTERM, wait this long for running commands before stopping them."),
) -> None:
    from ..errors import UsageError
    from .common import open_log
    from .timeparse import parse_time_ms

    if exec_ is None:
        used = [flag for flag, on in (("--exec-argv", exec_argv), ("--retries", retries),
                                      ("--dead-letter", dead_letter is not None),
                                      ("--batch", batch != 1), ("--concurrency", concurrency != 1),
                                      ("--exec-timeout", exec_timeout is not None)) if on]
        if used:
            raise UsageError(f"{used[0]} needs --exec CMD")
    if idle_timeout is not None and not follow:
        raise UsageError("--idle-timeout needs --follow (without it, consume stops once "
                         "caught up)")
    if group is None and getattr(ctx.get_parameter_source("session_timeout"), "name", None) == "COMMANDLINE":
        raise UsageError("--session-timeout needs --group")
    starts = [x for x in (offset is not None, last is not None, from_time is not None) if x]
    if len(starts) > 1:
        raise UsageError("use only one of --offset, --last and --from-time")
    if from_beginning and starts:
        raise UsageError("--from-beginning cannot be combined with --offset, --last or --from-time")
    start: str | int | tuple[str, int]
    if offset is None or offset in ("beginning", "earliest"):
        start = "beginning"
    elif offset in ("end", "latest"):
        start = "end"
    else:
        try:
            start = int(offset)
        except ValueError:
            raise UsageError(f"--offset {offset!r}: use a number, beginning, end, or -N") from None
    if last is not None:
        start = ("last", last)
    if from_time is not None:
        start = ("time", parse_time_ms(from_time))
    if group is not None:
        if partition is not None:
            raise UsageError("--partition cannot be used with --group: the group assigns partitions")
        if start not in ("beginning", "end"):
            raise UsageError("with --group, the start comes from the group's committed offsets; "
                             "only --offset end is accepted (to reset a group: fslog group reset)")

    log = open_log(ctx, topics=topics, groups=[group] if group else [])
    for name in topics:
        t = log.topic(name)
        if partition is not None:
            t.check_partition(partition, f"--partition {partition}")

    if exec_ is not None:
        from .execute import run_exec
        return run_exec(log, topics, group=group, start=start, partition=partition,
                        command=exec_, exec_argv=exec_argv, fmt=fmt, batch=batch,
                        concurrency=concurrency, retries=retries, retry_backoff=retry_backoff,
                        retry_backoff_max=retry_backoff_max, exec_timeout=exec_timeout,
                        dead_letter=dead_letter, follow=follow, idle_timeout=idle_timeout,
                        max_messages=max_messages, shutdown_timeout=shutdown_timeout,
                        session_timeout=session_timeout, skip_corrupt=skip_corrupt, quiet=quiet)

    if fmt == "raw":
        write_batch = _raw_writer()
    elif fmt == "json":
        from .formats import json_line
        write_batch = _record_writer(json_line)
    else:
        from .formats import Template
        write_batch = _record_writer(Template(fmt).render)

    stopping: list[int] = []
    state = {"waiting": False}

    def _on_signal(signum, frame):
        stopping.append(signum)
        if state["waiting"]:
            raise _Stopped()

    old_term = signal.signal(signal.SIGTERM, _on_signal)
    old_int = signal.signal(signal.SIGINT, _on_signal)
    try:
        from ..clients.consumer import open_consumer
        source = open_consumer(log, topics, group, partition, start=start, follow=follow,
                               session_timeout=session_timeout, skip_corrupt=skip_corrupt)
    except _Stopped:
        return
    from .progress import consume_progress
    source, progress = consume_progress(source, enabled=not follow and not quiet)
    progress.__enter__()
    out = sys.stdout.buffer
    pump = _Pump(source, out, write_batch, follow, idle_timeout, max_messages, stopping, state,
                 skip_corrupt)
    broken_pipe = False
    try:
        try:
            pump.run()
        except BrokenPipeError:
            # The reader went away (| head): what was not written is not delivered, and is
            # not committed. End quietly, like any good Unix filter.
            broken_pipe = True
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            progress.__exit__(None, None, None)
            pump.close_waiter()
            try:
                if not broken_pipe:
                    out.flush()
            except BrokenPipeError:
                broken_pipe = True
            finally:
                source.close()  # commits what was delivered; leaves the group
        finally:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)
            if broken_pipe:
                from .output import quiet_broken_pipe
                quiet_broken_pipe()


class _Pump:
    """The read loop: fetch, write, flush, report delivered offsets, commit, wait."""

    def __init__(self, source, out, write_batch, follow, idle_timeout, max_messages,
                 stopping, state, skip_corrupt=False):
        self.skip_corrupt = skip_corrupt
        self.source = source
        self.out = out
        self.write_batch = write_batch
        self.follow = follow
        self.idle_timeout = idle_timeout
        self.remaining = max_messages
        self.stopping = stopping
        self.state = state
        self.waiter = None

    def _warn(self) -> None:
        from .output import err
        for w in self.source.warnings:
            err(w)
        self.source.warnings.clear()

    def run(self) -> None:
        source, out = self.source, self.out
        self._warn()
        last_data = time.monotonic()
        while not self.stopping and self.remaining != 0:
            batches = source.fetch()
            self._warn()
            if batches:
                done = []
                for topic, b, stop in batches:
                    try:
                        self.remaining, nxt = self.write_batch(out, topic, b, stop, self.remaining)
                    except CorruptRecordError as e:
                        # CRC-valid but malformed records (written by a faulty producer)
                        if not self.skip_corrupt:
                            raise
                        from .output import err
                        err(f"skipped damaged data: {e}")
                        nxt = b.header.next_offset if stop is None else min(stop, b.header.next_offset)
                    done.append((topic, b.partition, nxt))
                    if self.remaining == 0:
                        break
                out.flush()
                for topic, p, nxt in done:  # written and flushed: now they may be committed
                    source.delivered(topic, p, nxt)
                source.after_write()
                source.maybe_commit()
                last_data = time.monotonic()
                continue
            source.after_write()
            source.maybe_commit()
            if not self.follow and source.caught_up():
                return
            if self.waiter is None and self.follow:
                from ..storage.follow import AppendWaiter
                self.waiter = AppendWaiter(source.watch_paths())
                continue  # re-check once the watches are in place
            timeout = 0.05 if (source.pending() or not self.follow) else source.poll_interval
            if self.idle_timeout is not None and self.follow:
                left = self.idle_timeout - (time.monotonic() - last_data)
                if left <= 0:
                    return
                timeout = left if timeout is None else min(timeout, left)
            self.state["waiting"] = True
            try:
                if self.waiter is not None:
                    self.waiter.wait(timeout)
                else:
                    time.sleep(timeout or 0.05)
            except _Stopped:
                return
            finally:
                self.state["waiting"] = False

    def close_waiter(self) -> None:
        if self.waiter is not None:
            self.waiter.close()
            self.waiter = None


class _Stopped(Exception):
    pass


def _raw_writer():
    def write(out, topic, b, stop, remaining):
        """Write a batch's values; return (remaining, next offset after what was written)."""
        h = b.header
        vals = b.values()
        first = max(h.base_offset, b.min_offset)
        dense = h.last_offset_delta + 1 == h.record_count
        if not dense:
            # A compacted batch: its offsets have gaps, and it may end past its last
            # record; once all of it is written, the position is the batch's end.
            recs = [r for r in b.records() if stop is None or r.offset < stop]
            nxt = h.next_offset if stop is None else min(stop, h.next_offset)
            if remaining is not None and len(recs) > remaining:
                recs = recs[:remaining]
                nxt = recs[-1].offset + 1 if recs else b.min_offset
            if not recs:
                return remaining, nxt
            vals = [r.value for r in recs]
        else:
            if stop is not None and h.next_offset > stop:
                vals = vals[:max(0, stop - first)]
            if remaining is not None and len(vals) > remaining:
                vals = vals[:remaining]
            nxt = first + len(vals)
        if not vals:
            return remaining, nxt
        if None in vals:
            vals = [v if v is not None else b"" for v in vals]
        out.write(b"\n".join(vals))
        out.write(b"\n")
        return (None if remaining is None else remaining - len(vals)), nxt
    return write


def _record_writer(render):
    from .formats import json_line, json_lines_keyed, json_lines_plain
    plain = json_lines_plain if render is json_line else None

    def write(out, topic, b, stop, remaining):
        h = b.header
        vals = b.plain_values() if plain is not None else None
        if vals is not None:
            # a plain batch: its lines are made in C, not one call per record
            first = b.first_offset
            nxt = h.next_offset if stop is None else min(stop, h.next_offset)
            if stop is not None and first + len(vals) > stop:
                vals = vals[:max(0, stop - first)]
            if remaining is not None and len(vals) > remaining:
                vals = vals[:remaining]
                nxt = first + remaining
            data = plain(topic, b.partition, first, h.base_timestamp, vals) if vals else b""
            if data is not None:
                out.write(data)
                return (None if remaining is None else remaining - len(vals)), nxt
        kv = b.keyed() if plain is not None and vals is None else None
        if kv is not None:
            # a keyed batch: the same, keys beside the values
            keys, vals = kv
            first = b.first_offset
            nxt = h.next_offset if stop is None else min(stop, h.next_offset)
            if stop is not None and first + len(vals) > stop:
                keys, vals = keys[:max(0, stop - first)], vals[:max(0, stop - first)]
            if remaining is not None and len(vals) > remaining:
                keys, vals = keys[:remaining], vals[:remaining]
                nxt = first + remaining
            data = json_lines_keyed(topic, b.partition, first, h.base_timestamp, keys, vals) \
                if vals else b""
            if data is not None:
                out.write(data)
                return (None if remaining is None else remaining - len(vals)), nxt
        chunks = []
        # once the whole batch is written the position is its end (a compacted batch
        # may end past its last record)
        nxt = h.next_offset if stop is None else min(stop, h.next_offset)
        for r in b.records():
            if stop is not None and r.offset >= stop:
                break
            if remaining is not None:
                if remaining == 0:
                    nxt = r.offset
                    break
                remaining -= 1
            chunks.append(render(topic, b.partition, r))
        if chunks:
            out.write(b"".join(chunks))
        return remaining, nxt
    return write
