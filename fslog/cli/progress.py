"""Progress on stderr for long-running commands: only on a terminal, never with --quiet.

``Progress(description, poll)`` shows one rich progress line on stderr while its ``with``
block runs, refreshed ten times a second from ``poll() -> (completed, total, info)``
(``total`` None: no bar length known; ``info``: text after the bar, e.g. records/s). It
is called from a background thread, so it must only read counters. The line disappears
when the block ends (a summary, if any, is printed after it). When stderr is not a
terminal or ``enabled`` is false nothing happens at all, and rich is not even imported:
scripts and pipelines pay nothing.

Helpers for the commands: ``file_progress`` (``fslog produce`` from a regular file: bytes
read of the file's size, records/s, time left), ``consume_progress`` (``fslog consume``
without --follow: records toward the end offsets, bytes) and ``exec_progress``
(``--exec``). A future ``fslog clean`` uses ``Progress`` directly.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from typing import Any


def stderr_wants_progress(enabled: bool = True) -> bool:
    if not enabled:
        return False
    try:
        return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class Progress:
    def __init__(self, description: str, poll, enabled: bool = True, interval: float = 0.1):
        self.description = description
        self.poll = poll
        self.enabled = stderr_wants_progress(enabled)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: Any = None

    def __enter__(self):
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as _RichProgress
        self._progress = _RichProgress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
            console=Console(stderr=True, markup=False, highlight=False), transient=True,
            refresh_per_second=10)
        self._task = self._progress.add_task(self.description, total=None, info="")
        self._update()
        self._progress.start()
        self._thread = threading.Thread(target=self._loop, name="fslog-progress", daemon=True)
        self._thread.start()
        return self

    def _update(self) -> None:
        try:
            completed, total, info = self.poll()
        except Exception:  # a counter changing under us: try again next tick
            return
        self._progress.update(self._task, completed=completed, total=total, info=info)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._update()

    def __exit__(self, *exc):
        if self._progress is None:
            return False
        self._stop.set()
        self._thread.join(timeout=1)
        self._update()  # the last frame shows the end state
        self._progress.refresh()
        self._progress.stop()
        return False


def _rate(count: int, started: float) -> str:
    elapsed = time.monotonic() - started
    return f"{count / elapsed:,.0f}/s" if elapsed > 0.2 else ""


def file_progress(fd: int, ingester, enabled: bool = True) -> Progress:
    """``fslog produce`` reading a regular file: bytes read of its size, records, records/s."""
    try:
        st = os.fstat(fd)
        regular = stat.S_ISREG(st.st_mode)
        start = os.lseek(fd, 0, os.SEEK_CUR) if regular else 0
    except OSError:
        regular = False
    if not regular:
        return Progress("", lambda: (0, None, ""), enabled=False)
    total = max(0, st.st_size - start)
    started = time.monotonic()

    def poll():
        done = os.lseek(fd, 0, os.SEEK_CUR) - start
        n = ingester.records
        return min(done, total), total, f"{n:,} records {_rate(n, started)}"
    return Progress("produce", poll, enabled=enabled)


class _CountingSource:
    """Wraps a consumer for ``fslog consume``'s loop: counts what it reports delivered."""

    def __init__(self, source):
        self._source = source
        self.bytes = 0
        self.done = 0
        self._pos = {(tr.topic.name, n): r.next_offset
                     for tr in getattr(source, "readers", ()) for n, r in tr.readers.items()}
        self.total_at_start = _known_total(source)

    def __getattr__(self, name):
        return getattr(self._source, name)

    def fetch(self, *args, **kw):
        out = self._source.fetch(*args, **kw)
        self.bytes += sum(len(b.data) for _t, b, _s in out)
        return out

    def delivered(self, topic: str, partition: int, next_offset: int) -> None:
        tp = (topic, partition)
        owned = getattr(self._source, "owned", None)
        before = self._pos.get(tp)
        if owned is not None and tp in owned:
            before = owned[tp].delivered
        if before is not None and next_offset > before:
            self.done += next_offset - before
        self._pos[tp] = max(next_offset, before or 0)
        self._source.delivered(topic, partition, next_offset)

    def totals(self) -> tuple[int, int | None]:
        return self.done, _total(self._source, self.done, self.total_at_start)


def _known_total(source) -> int | None:
    """Records to the end offsets of a plain consumer, known before it reads anything."""
    readers = getattr(source, "readers", None)
    if readers is None:
        return None
    return sum(max(0, tr.stop_offsets[n] - r.next_offset)
               for tr in readers if tr.stop_offsets is not None for n, r in tr.readers.items())


def _total(source, done: int, total_at_start: int | None) -> int | None:
    """Plain consumer: known at start; group member: done plus what its partitions lack."""
    if total_at_start is not None:
        return total_at_start
    owned = getattr(source, "owned", None)
    if owned is None:
        return None
    left = sum(max(0, o.stop - o.delivered) for o in list(owned.values()) if o.stop is not None)
    return done + left


def consume_progress(source, enabled: bool = True):
    """(source to read from, Progress): records toward the end offsets, and bytes."""
    if not stderr_wants_progress(enabled):
        return source, Progress("", lambda: (0, None, ""), enabled=False)
    counting = _CountingSource(source)
    started = time.monotonic()

    def poll():
        done, total = counting.totals()
        return done, total, f"{done:,} records, {_size(counting.bytes)} {_rate(done, started)}"
    return counting, Progress("consume", poll)


def exec_progress(executor, source, enabled: bool = True) -> Progress:
    """``--exec`` without --follow: records handled toward the end offsets."""
    if not stderr_wants_progress(enabled):
        return Progress("", lambda: (0, None, ""), enabled=False)
    total_at_start = _known_total(source)
    started = time.monotonic()

    def poll():
        done = executor.stats["records"]
        return done, _total(source, done, total_at_start), \
            f"{done:,} records, {executor.stats['commands']:,} commands {_rate(done, started)}"
    return Progress("exec", poll)
