"""``fslog consume TOPIC...``: records → stdout, alone or as a member of a group."""

from __future__ import annotations

import signal
import sys
import time
from typing import List, Optional

from ..clients.readloop import ReadLoop, Sink
from ..errors import CorruptRecordError
from .params import Argument, Context, Option

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
    ctx: Context,
    topics: List[str] = Argument(..., metavar="TOPIC...", help="Topic(s) to read."),
    group: Optional[str] = Option(None, "--group", "-g", help="Consume as a member of this consumer group."),
    partition: Optional[int] = Option(None, "--partition", "-p", min=0, help="Read only this partition (not with --group)."),
    offset: Optional[str] = Option(None, "--offset", "-o", metavar="N|beginning|end|-N",
                                         help="Start offset (per partition): N, beginning, end, or -N for N before the end. "
                                              "With --group: 'end' makes a group without committed offsets start at the end."),
    from_beginning: bool = Option(False, "--from-beginning", help="Start at the beginning (the default; for Kafka users)."),
    last: Optional[int] = Option(None, "--last", "-n", min=0, metavar="N", help="Start N records before the end of each partition."),
    from_time: Optional[str] = Option(None, "--from-time", metavar="TIME", help="Start at the first record at or after TIME (ISO-8601, or 1h, 30m, 2d ago)."),
    max_messages: Optional[int] = Option(None, "--max-messages", "-m", min=0, help="Stop after N records."),
    follow: bool = Option(False, "--follow", "-F", help="Keep waiting for new records until SIGINT/SIGTERM or --idle-timeout."),
    idle_timeout: Optional[float] = Option(None, "--idle-timeout", min=0, metavar="SECONDS", help="With --follow: exit 0 after this long without new records."),
    fmt: str = Option("raw", "--format", "-f", help="raw (values), json, or a template like '%t/%p@%o %k %s'."),
    skip_corrupt: bool = Option(False, "--skip-corrupt", help="Step over damaged data (reported on stderr with file, position and offsets) instead of stopping."),
    session_timeout: float = Option(10.0, "--session-timeout", min=0.5, metavar="SECONDS", help="With --group: a member whose heartbeats stop for this long is evicted."),
    quiet: bool = Option(False, "--quiet", "-q", help="No progress line or summary on stderr (shown only on a terminal anyway)."),
    exec_: Optional[str] = Option(None, "--exec", "-x", metavar="CMD",
                                        help="Run CMD (through sh -c) once per record, the record on stdin (as --format prints it), "
                                             "FSLOG_TOPIC, FSLOG_PARTITION, FSLOG_OFFSET, FSLOG_KEY, FSLOG_TIMESTAMP, FSLOG_HEADER_<NAME> in its "
                                             "environment; with --group, a record is committed only after CMD exited 0. "
                                             "Example: --exec './notify.sh'"),
    exec_argv: bool = Option(False, "--exec-argv", help="Split --exec into words like a shell would, and run it without a shell."),
    retries: int = Option(0, "--retries", min=0, metavar="N", help="With --exec: run a failed command up to N more times, with backoff."),
    retry_backoff: float = Option(0.1, "--retry-backoff", min=0, metavar="SECONDS", help="With --exec: wait this long before the first retry, doubling each time."),
    retry_backoff_max: float = Option(10.0, "--retry-backoff-max", min=0, metavar="SECONDS", help="With --exec: the longest wait between retries."),
    exec_timeout: Optional[float] = Option(None, "--exec-timeout", min=0.001, metavar="SECONDS", help="With --exec: a command running longer has failed (it gets SIGTERM, then SIGKILL)."),
    dead_letter: Optional[str] = Option(None, "--dead-letter", metavar="TOPIC", help="With --exec: after the last attempt, write the record to TOPIC (headers fslog.errors.*: why) and go on; "
                                                                                          "without it fslog stops with exit 1 and the record is not committed."),
    batch: int = Option(1, "--batch", min=1, metavar="N", help="With --exec: give CMD up to N records of one partition at once, one per line; committed together."),
    concurrency: int = Option(1, "--concurrency", "-j", min=1, metavar="K", help="With --exec: run up to K commands at once (never two for one partition: order per partition is kept)."),
    shutdown_timeout: float = Option(30.0, "--shutdown-timeout", min=0, metavar="SECONDS", help="With --exec: on SIGINT/SIGTERM, wait this long for running commands before stopping them."),
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


class _Pump(Sink):
    """Delivery for ``fslog consume``: write each batch, flush, then report the offsets
    as delivered (they may be committed). The loop itself is ``clients.readloop``."""

    def __init__(self, source, out, write_batch, follow, idle_timeout, max_messages,
                 stopping, state, skip_corrupt=False):
        self.skip_corrupt = skip_corrupt
        self.source = source
        self.out = out
        self.write_batch = write_batch
        self.follow = follow
        self.idle_timeout = idle_timeout
        self.remaining = max_messages
        self.stopping_signals = stopping
        self.state = state

    def run(self) -> None:
        from .output import err
        ReadLoop(self.source, self, follow=self.follow, idle_timeout=self.idle_timeout,
                 on_warning=err).run()

    def take(self, batches) -> None:
        out = self.out
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
                nxt = b.end_at(stop)
            done.append((topic, b.partition, nxt))
            if self.remaining == 0:
                break
        out.flush()
        for topic, p, nxt in done:  # written and flushed: now they may be committed
            self.source.delivered(topic, p, nxt)

    def stopping(self) -> bool:
        return bool(self.stopping_signals)

    def finished(self) -> bool:
        return self.remaining == 0

    def poll(self, timeout: float) -> None:
        if timeout > 0:
            self._interruptible(time.sleep, timeout)

    def wait(self, waiter, timeout) -> None:
        self._interruptible(waiter.wait, timeout)

    def _interruptible(self, fn, timeout) -> None:
        """Wait in ``fn``; a signal meanwhile ends the wait (``_Stopped``)."""
        if self.stopping_signals:
            return
        try:
            self.state["waiting"] = True
            fn(timeout)
        except _Stopped:
            pass
        finally:
            self.state["waiting"] = False


class _Stopped(Exception):
    pass


def _raw_writer():
    def write(out, topic, b, stop, remaining):
        """Write a batch's values; return (remaining, next offset after what was written)."""
        if b.dense:
            vals = b.values()
            n, nxt = b.cut(stop, remaining)
            vals = vals[:n]
        else:
            recs = b.records()
            n, nxt = b.cut(stop, remaining, recs)
            vals = [r.value for r in recs[:n]]
        if not vals:
            return remaining, nxt
        if None in vals:
            vals = [v if v is not None else b"" for v in vals]
        out.write(b"\n".join(vals))
        out.write(b"\n")
        return (None if remaining is None else remaining - n), nxt
    return write


def _record_writer(render):
    from .formats import json_line, json_lines_keyed, json_lines_plain
    plain = json_lines_plain if render is json_line else None

    def write(out, topic, b, stop, remaining):
        vals = b.plain_values() if plain is not None else None
        if vals is not None:
            # a plain batch: its lines are made in C, not one call per record
            n, nxt = b.cut(stop, remaining)
            vals = vals[:n]
            data = plain(topic, b.partition, b.first_offset, b.header.base_timestamp, vals) if vals else b""
            if data is not None:
                out.write(data)
                return (None if remaining is None else remaining - n), nxt
        kv = b.keyed() if plain is not None and vals is None else None
        if kv is not None:
            # a keyed batch: the same, keys beside the values
            n, nxt = b.cut(stop, remaining)
            keys, vals = kv[0][:n], kv[1][:n]
            data = json_lines_keyed(topic, b.partition, b.first_offset, b.header.base_timestamp,
                                    keys, vals) if vals else b""
            if data is not None:
                out.write(data)
                return (None if remaining is None else remaining - n), nxt
        recs = b.records()
        n, nxt = b.cut(stop, remaining, recs)
        if n:
            out.write(b"".join(render(topic, b.partition, r) for r in recs[:n]))
        return (None if remaining is None else remaining - n), nxt
    return write
