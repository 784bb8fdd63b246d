"""Running a command per record: ``fslog consume --exec``, an ``xargs`` for a log.

``Executor`` takes records from a consumer (``consumer.py``: a ``GroupConsumer`` or a plain
``Consumer``) and runs a command for each record, or for each batch of up to ``batch``
records of one partition. A record counts as delivered -- so the group may commit it --
only once its command exited 0, or once it was written (and fsynced) to the dead-letter
topic after its last attempt. Offsets are committed right after each completion, so a
kill -9 of this process makes the next run handle again only the records whose commands
were running.

What a command gets:

- stdin: each record rendered by ``render(topic, partition, record) -> bytes`` (by
  default its value and a newline, as ``fslog consume`` prints it), then EOF.
- environment: ``FSLOG_TOPIC``, ``FSLOG_PARTITION``, ``FSLOG_OFFSET``, ``FSLOG_TIMESTAMP``
  (ms), ``FSLOG_KEY`` (unset for a null key), ``FSLOG_HEADER_<NAME>`` per header (the
  name upper-cased, every character other than A-Z, 0-9 and _ made _; the last of equal
  names wins), ``FSLOG_ATTEMPT`` (1, 2, ...). Keys and header values are passed as the
  bytes they are; one holding a NUL byte (which no environment can carry) is passed
  base64-encoded as ``..._BASE64`` instead. A batch of several records sets
  ``FSLOG_OFFSET`` (the first), ``FSLOG_LAST_OFFSET`` and ``FSLOG_COUNT`` and no
  per-record variables. Variables of these names inherited from the environment are
  removed, so a handler started from another handler sees only its own.
- stdout: inherited; stderr: copied to ``stderr_fd`` and its tail kept for dead letters.
- its own session (process group): a terminal's Ctrl-C reaches fslog, which then lets
  running commands finish, instead of killing them mid-record.

Failure (exit status other than 0, killed by a signal, ``timeout`` passed, cannot start):
retried after ``retry_backoff`` seconds, doubling up to ``retry_backoff_max``, up to
``retries`` times; then, with a dead-letter producer, every record of the batch is
written to it with ``fslog.errors.*`` headers (original topic, partition, offset,
timestamp, group, exit code, reason, attempts, stderr tail) and processing goes on;
without one, nothing new is started, running commands are waited for, and ``run()``
raises ``CommandFailedError``: the record is not committed and the next run starts with it.

Ordering: the records of one partition are handled strictly one command after another;
up to ``concurrency`` commands for different partitions run at once. The committed offset
of a partition is always the offset after its last completed record.

Threads: the caller's thread runs ``run()``; it alone touches the consumer (which is not
thread-safe) and calls ``on_event``. Each running command has a worker thread that starts
it, feeds its stdin, reads its stderr, waits, retries and writes dead letters (through the
thread-safe producer). ``stop()`` may be called from a signal handler: nothing new starts,
running commands get ``shutdown_timeout`` seconds to finish (then SIGTERM, and SIGKILL two
seconds later, to their process groups; their records are not committed). The library
never prints: retries, dead letters and warnings are reported through ``on_event``.
"""

from __future__ import annotations

import base64
import os
import queue
import re
import select
import signal
import subprocess
import threading
import time
from collections import OrderedDict, deque

from ..errors import CommandFailedError, CorruptRecordError, FslogError

STDERR_TAIL = 4096        # bytes of a failed command's stderr kept for its dead letters
PREFETCH_RECORDS = 1000   # records read ahead per partition
KILL_GRACE = 2.0          # seconds between SIGTERM and SIGKILL

_OWN_VARS = (b"FSLOG_TOPIC", b"FSLOG_PARTITION", b"FSLOG_OFFSET", b"FSLOG_LAST_OFFSET",
             b"FSLOG_COUNT", b"FSLOG_KEY", b"FSLOG_KEY_BASE64", b"FSLOG_TIMESTAMP",
             b"FSLOG_ATTEMPT")
_NOT_NAME = re.compile(rb"[^A-Z0-9_]")


def value_line(topic: str, partition: int, record) -> bytes:
    """The default stdin of a command: the value and a newline (a null value: a newline)."""
    v = record.value
    return v + b"\n" if v is not None else b"\n"


def header_variable(key: str) -> bytes:
    """``FSLOG_HEADER_<NAME>`` for a header key: upper-cased, other characters made ``_``."""
    return b"FSLOG_HEADER_" + _NOT_NAME.sub(b"_", key.encode("utf-8", "surrogateescape").upper())


def describe_status(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


class _Task:
    """Records of one partition handed to one command."""

    __slots__ = ("topic", "partition", "epoch", "records", "next_offset")

    def __init__(self, topic, partition, epoch, records, next_offset):
        self.topic = topic
        self.partition = partition
        self.epoch = epoch
        self.records = records
        self.next_offset = next_offset  # where the partition continues once this is done

    @property
    def tp(self):
        return (self.topic, self.partition)

    @property
    def where(self) -> str:
        first, last = self.records[0].offset, self.records[-1].offset
        return f"{self.topic}/{self.partition}@{first}" + (f"..{last}" if last != first else "")


class _Outcome:
    __slots__ = ("task", "status", "code", "reason", "attempts", "stderr")

    # status: "ok", "dead_letter", "failed" (for good), "cancelled" (stopping)
    def __init__(self, task, status, code=None, reason="", attempts=0, stderr=b""):
        self.task = task
        self.status = status
        self.code = code
        self.reason = reason
        self.attempts = attempts
        self.stderr = stderr


class _Queue:
    """Records read but not yet handed to a command, of one partition."""

    __slots__ = ("epoch", "items")

    def __init__(self, epoch):
        self.epoch = epoch
        self.items: deque = deque()  # (record or None, next offset after it)


class Executor:
    def __init__(self, source, command, *, shell: bool = True, render=None, batch: int = 1,
                 concurrency: int = 1, retries: int = 0, retry_backoff: float = 0.1,
                 retry_backoff_max: float = 10.0, timeout: float | None = None,
                 dead_letter=None, group: str | None = None, follow: bool = False,
                 idle_timeout: float | None = None, max_records: int | None = None,
                 shutdown_timeout: float = 30.0, stderr_fd: int | None = 2,
                 env: dict | None = None, on_event=None, skip_corrupt: bool = False):
        if batch < 1 or concurrency < 1 or retries < 0:
            raise FslogError("batch and concurrency must be at least 1, retries at least 0")
        if not command:
            raise FslogError("no command to run")
        self.source = source
        self.command = command
        self.shell = shell
        self.render = render or value_line
        self.batch = batch
        self.concurrency = concurrency
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self.timeout = timeout
        self.dead_letter = dead_letter
        self.group = group
        self.follow = follow
        self.idle_timeout = idle_timeout
        self.remaining = max_records
        self.shutdown_timeout = shutdown_timeout
        self.stderr_fd = stderr_fd
        self.on_event = on_event
        self.skip_corrupt = skip_corrupt
        base = {k: v for k, v in os.environb.items()
                if k not in _OWN_VARS and not k.startswith(b"FSLOG_HEADER_")}
        for k, v in (env or {}).items():
            base[os.fsencode(k)] = os.fsencode(v)
        self._base_env = base
        self._queues: OrderedDict[tuple, _Queue] = OrderedDict()
        self._inflight: dict[tuple, _Task] = {}
        self._done: queue.Queue = queue.Queue()  # outcomes and events from the workers
        self._procs: dict[int, subprocess.Popen] = {}
        self._procs_lock = threading.Lock()
        self._dl_lock = threading.Lock()
        self._stopping = threading.Event()  # nothing new starts; retries are cancelled
        self._killing = False  # shutdown is stopping commands that outlived its timeout
        # set by stop(), which may run in a signal handler: plain flags, no locks
        self._stop_requested = False
        self._force = False
        self._stats_lock = threading.Lock()
        self._failure: _Outcome | None = None
        self.stats = {"records": 0, "commands": 0, "failed_attempts": 0, "dead_lettered": 0}

    # ------------------------------------------------------------ control
    def stop(self, force: bool = False) -> None:
        """Finish: start nothing new, let running commands end. Safe in a signal handler
        (it only sets flags; the loop notices within 0.25 s). A second call, or ``force``,
        stops running commands now."""
        if self._stop_requested:
            force = True
        self._stop_requested = True
        if force:
            self._force = True

    def _emit(self, kind: str, **info) -> None:
        if self.on_event is not None:
            self.on_event(kind, info)

    # ------------------------------------------------------------ the loop
    def run(self) -> dict:
        """Handle records until caught up (or, following, until stopped / idle); return
        counts: records, commands, failed_attempts, dead_lettered."""
        src = self.source
        src.busy = self._busy
        last_data = time.monotonic()
        waiter = None
        try:
            self._warnings()
            while True:
                self._collect(0)
                if self._stop_requested:
                    self._stopping.set()
                if self._stopping.is_set():
                    break
                done_reading = self.remaining == 0
                if not done_reading:
                    batches = src.fetch(want=self._want)
                    self._warnings()
                    if batches:
                        self._enqueue(batches)
                        last_data = time.monotonic()
                    self._reconcile()
                    self._dispatch()
                src.after_write()
                src.maybe_commit()
                if self._stopping.is_set():
                    continue
                if done_reading and not self._inflight:
                    break
                if not self._inflight and not any(q.items for q in self._queues.values()):
                    if not self.follow and src.caught_up():
                        break
                    if self.follow and self.idle_timeout is not None and \
                            time.monotonic() - last_data >= self.idle_timeout:
                        break
                if self._inflight:
                    self._collect(0.05)
                elif self.follow:
                    if waiter is None:
                        from ..storage.follow import AppendWaiter
                        waiter = AppendWaiter(src.watch_paths())
                        continue  # re-check once the watches are in place
                    timeout = 0.05 if src.pending() else 0.25
                    if self.idle_timeout is not None:
                        left = self.idle_timeout - (time.monotonic() - last_data)
                        timeout = max(0.0, min(timeout, left))
                    waiter.wait(timeout)
                else:
                    self._collect(0.05 if src.pending() else 0.01)
        finally:
            if waiter is not None:
                waiter.close()
            self._shutdown()
        if self._failure is not None:
            f = self._failure
            t = f.task
            tail = f.stderr.decode("utf-8", "replace").strip().splitlines()
            why = f"; stderr: {tail[-1][:200]}" if tail else ""
            raise CommandFailedError(
                f"{t.where}: the command failed ({f.reason}) after {f.attempts} attempt"
                f"{'s' if f.attempts != 1 else ''}{why}; not committed, the next run starts "
                f"with it (--retries N to retry, --dead-letter TOPIC to set failed records aside "
                f"and go on)",
                t.topic, t.partition, t.records[0].offset, f.code)
        return self.stats

    def _warnings(self) -> None:
        ws = getattr(self.source, "warnings", None)
        if ws:
            for w in ws:
                self._emit("warning", message=w)
            ws.clear()

    def _busy(self, tp) -> bool:
        return tp in self._inflight

    def _want(self, topic: str, partition: int) -> bool:
        q = self._queues.get((topic, partition))
        return q is None or len(q.items) < max(PREFETCH_RECORDS, 2 * self.batch)

    def _enqueue(self, batches) -> None:
        src = self.source
        for topic, b, stop in batches:
            tp = (topic, b.partition)
            epoch = src.claim(topic, b.partition)
            q = self._queues.get(tp)
            if q is None or q.epoch != epoch:
                q = self._queues[tp] = _Queue(epoch)
            end = b.header.next_offset if stop is None else min(stop, b.header.next_offset)
            try:
                recs = [r for r in b.records() if stop is None or r.offset < stop]
            except CorruptRecordError as e:
                if not self.skip_corrupt:
                    raise
                self._emit("warning", message=f"skipped damaged data: {e}")
                q.items.append((None, end))
                continue
            for r in recs[:-1]:
                q.items.append((r, r.offset + 1))
            if recs:
                # the last record of a batch: the partition continues at the batch's end
                # (a compacted batch may end past its last record)
                q.items.append((recs[-1], end))
            else:
                q.items.append((None, end))

    def _reconcile(self) -> None:
        """Forget records of partitions this member lost (the new owner reads them)."""
        src = self.source
        for tp in list(self._queues):
            if tp in self._inflight:
                continue
            if src.claim(*tp) != self._queues[tp].epoch:
                del self._queues[tp]

    def _dispatch(self) -> None:
        src = self.source
        for tp in list(self._queues):
            if self.remaining == 0 or self._failure is not None:
                return
            if tp in self._inflight:
                continue
            q = self._queues[tp]
            if src.claim(*tp) != q.epoch:
                continue
            while q.items and q.items[0][0] is None:  # nothing to run: just move on
                src.delivered(tp[0], tp[1], q.items.popleft()[1])
            if not q.items or len(self._inflight) >= self.concurrency:
                continue
            n = min(self.batch, len(q.items))
            if self.remaining is not None:
                n = min(n, self.remaining)
                self.remaining -= n
            items = [q.items.popleft() for _ in range(n)]
            task = _Task(tp[0], tp[1], q.epoch, [r for r, _ in items], items[-1][1])
            self._inflight[tp] = task
            self._queues.move_to_end(tp)  # round robin over partitions
            threading.Thread(target=self._work, args=(task,), name="fslog-exec",
                             daemon=True).start()

    def _collect(self, timeout: float) -> None:
        """Take in what the workers reported; commit at once after completions."""
        completed = False
        while True:
            try:
                item = self._done.get(timeout=timeout) if timeout else self._done.get_nowait()
            except queue.Empty:
                break
            timeout = 0
            if isinstance(item, tuple):  # an event from a worker
                self._emit(item[0], **item[1])
                continue
            o: _Outcome = item
            t = o.task
            self._inflight.pop(t.tp, None)
            if o.status in ("ok", "dead_letter"):
                self.source.delivered(t.topic, t.partition, t.next_offset)
                self.stats["records"] += len(t.records)
                if o.status == "dead_letter":
                    self.stats["dead_lettered"] += len(t.records)
                completed = True
            elif o.status == "cancelled" and not self._killing:
                # a failed attempt that is not retried because fslog is stopping: say so
                # (its record stays uncommitted; the next run handles it again)
                self._emit("abandoned", where=t.where, reason=o.reason)
            elif o.status == "failed":
                self._queues.pop(t.tp, None)
                if self._failure is None:
                    self._failure = o
                    self._stopping.set()  # start nothing new; running commands may finish
        if completed:
            self.source.maybe_commit(force=True)

    def _shutdown(self) -> None:
        """Wait for running commands (bounded), stop the rest, commit what completed."""
        self._stopping.set()
        deadline = time.monotonic() + self.shutdown_timeout
        while self._inflight and not self._force and time.monotonic() < deadline:
            self._collect(min(0.05, max(0.001, deadline - time.monotonic())))
        if self._inflight:
            n = len(self._inflight)
            self._killing = True  # their outcomes are reported by this one event
            self._emit("killed", count=n, timeout=self.shutdown_timeout,
                       where=[t.where for t in self._inflight.values()])
            for sig in (signal.SIGTERM, signal.SIGKILL):  # each given KILL_GRACE to work
                with self._procs_lock:
                    procs = list(self._procs.values())
                for p in procs:
                    _signal_group(p, sig)
                end = time.monotonic() + KILL_GRACE
                while self._inflight and time.monotonic() < end:
                    self._collect(0.05)
        self._collect(0)
        self.source.maybe_commit(force=True)

    # ------------------------------------------------------------ workers
    def _work(self, task: _Task) -> None:
        try:
            self._done.put(self._handle(task))
        except BaseException as e:  # never lose a task: report it as failed
            self._done.put(_Outcome(task, "failed", None, f"internal error: {e!r}", 0))

    def _handle(self, task: _Task) -> _Outcome:
        data = b"".join(self.render(task.topic, task.partition, r) for r in task.records)
        attempt = 0
        while True:
            attempt += 1
            with self._stats_lock:
                self.stats["commands"] += 1
            code, reason, tail = self._attempt(task, data, attempt)
            if code == 0:
                return _Outcome(task, "ok", 0, "", attempt)
            with self._stats_lock:
                self.stats["failed_attempts"] += 1
            if self._stopping.is_set():
                # stopping (or another partition failed): not retried, not set aside;
                # uncommitted, so the next run handles it again
                return _Outcome(task, "cancelled", code, reason, attempt, tail)
            if attempt <= self.retries:
                delay = min(self.retry_backoff_max, self.retry_backoff * 2 ** (attempt - 1))
                self._done.put(("retry", {"where": task.where, "reason": reason,
                                          "attempt": attempt, "attempts": self.retries + 1,
                                          "delay": delay}))
                if self._stopping.wait(delay):
                    return _Outcome(task, "cancelled", code, reason, attempt, tail)
                continue
            if self.dead_letter is None:
                return _Outcome(task, "failed", code, reason, attempt, tail)
            try:
                self._write_dead_letters(task, code, reason, attempt, tail)
            except (FslogError, OSError) as e:
                return _Outcome(task, "failed", code,
                                f"{reason}; and writing to the dead-letter topic failed: {e}",
                                attempt, tail)
            self._done.put(("dead_letter", {"where": task.where, "reason": reason,
                                            "attempts": attempt,
                                            "topic": self.dead_letter.topic.name}))
            return _Outcome(task, "dead_letter", code, reason, attempt, tail)

    def _env(self, task: _Task, attempt: int) -> dict:
        env = dict(self._base_env)
        env[b"FSLOG_TOPIC"] = task.topic.encode("utf-8")
        env[b"FSLOG_PARTITION"] = b"%d" % task.partition
        env[b"FSLOG_OFFSET"] = b"%d" % task.records[0].offset
        env[b"FSLOG_ATTEMPT"] = b"%d" % attempt
        if len(task.records) > 1 or self.batch > 1:
            env[b"FSLOG_LAST_OFFSET"] = b"%d" % task.records[-1].offset
            env[b"FSLOG_COUNT"] = b"%d" % len(task.records)
            if len(task.records) > 1:
                return env
        r = task.records[0]
        env[b"FSLOG_TIMESTAMP"] = b"%d" % r.timestamp
        if r.key is not None:
            _put(env, b"FSLOG_KEY", r.key)
        for k, v in r.headers:
            name = header_variable(k)
            env.pop(name, None)
            env.pop(name + b"_BASE64", None)
            _put(env, name, v if v is not None else b"")
        return env

    def _attempt(self, task: _Task, data: bytes, attempt: int) -> tuple[int, str, bytes]:
        """Run the command once: (exit status, reason if failed, stderr tail)."""
        try:
            p = subprocess.Popen(self.command, shell=self.shell, stdin=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=self._env(task, attempt),
                                 start_new_session=True)
        except OSError as e:
            return 127, f"cannot run the command: {e.strerror or e}", b""
        assert p.stdin is not None and p.stderr is not None  # both are pipes
        with self._procs_lock:
            self._procs[id(p)] = p
        try:
            feeder = threading.Thread(target=_feed, args=(p.stdin, data), daemon=True)
            feeder.start()
            tail = bytearray()
            fd = p.stderr.fileno()
            deadline = None if self.timeout is None else time.monotonic() + self.timeout
            timed_out = killed_at = None
            eof = False
            code = None
            while code is None:
                if not eof and select.select([fd], [], [], 0.05)[0]:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        self._forward(chunk)
                        tail += chunk
                        if len(tail) > STDERR_TAIL:
                            del tail[:-STDERR_TAIL]
                        continue
                    eof = True
                if eof:
                    try:
                        code = p.wait(0.05)
                    except subprocess.TimeoutExpired:
                        pass
                else:
                    code = p.poll()
                    if code is not None:
                        # exited; a background child may still hold stderr open: take
                        # what is there and stop reading
                        while select.select([fd], [], [], 0)[0]:
                            chunk = os.read(fd, 65536)
                            if not chunk:
                                break
                            self._forward(chunk)
                            tail += chunk
                        del tail[:-STDERR_TAIL]
                now = time.monotonic()
                if code is None and deadline is not None and now >= deadline:
                    if timed_out is None:
                        timed_out = now
                        _signal_group(p, signal.SIGTERM)
                    elif killed_at is None and now - timed_out >= KILL_GRACE:
                        killed_at = now
                        _signal_group(p, signal.SIGKILL)
            feeder.join(1.0)
        finally:
            with self._procs_lock:
                self._procs.pop(id(p), None)
            for f in (p.stdin, p.stderr):
                try:
                    f.close()
                except OSError:
                    pass
        if code == 0:
            return 0, "", bytes(tail)
        if timed_out is not None:
            reason = f"timed out after {self.timeout:g} s"
        else:
            reason = describe_status(code)
        return (code if code >= 0 else 128 - code), reason, bytes(tail)

    def _forward(self, chunk: bytes) -> None:
        if self.stderr_fd is not None:
            try:
                os.write(self.stderr_fd, chunk)
            except OSError:
                pass

    def _write_dead_letters(self, task: _Task, code: int, reason: str, attempts: int,
                            tail: bytes) -> None:
        common = [("fslog.errors.exit.code", str(code).encode()),
                  ("fslog.errors.reason", reason.encode("utf-8", "replace")),
                  ("fslog.errors.attempts", str(attempts).encode())]
        if self.group is not None:
            common.append(("fslog.errors.group", self.group.encode("utf-8")))
        common.append(("fslog.errors.stderr", tail))
        with self._dl_lock:
            for r in task.records:
                headers = list(r.headers) + [
                    ("fslog.errors.topic", task.topic.encode("utf-8")),
                    ("fslog.errors.partition", str(task.partition).encode()),
                    ("fslog.errors.offset", str(r.offset).encode()),
                    ("fslog.errors.timestamp", str(r.timestamp).encode()),
                ] + common
                self.dead_letter.send(r.value, key=r.key, headers=headers)
            self.dead_letter.flush()  # durable before the originals are committed


def _put(env: dict, name: bytes, value: bytes) -> None:
    if b"\0" in value:
        env[name + b"_BASE64"] = base64.b64encode(value)
    else:
        env[name] = value


def _feed(pipe, data: bytes) -> None:
    try:
        if data:
            pipe.write(data)
    except OSError:  # the command did not read all of its stdin: its choice
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
