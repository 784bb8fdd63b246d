"""Waking long-poll Fetches when a partition is appended to, by this or any process.

Appends made by this server call ``notify(path)`` directly, on the event loop, right
after the append: a Fetch waiting on that partition wakes in the same loop iteration.
Appends by other processes (``fslog produce`` in a shell, another library producer) are
seen through inotify: one inotify descriptor, read by the event loop itself (no thread),
watches each partition directory a Fetch has waited on, non-recursively (kept while the
server runs: one watch per partition). Only changes a reader cares about wake anyone: a
segment file (``*.log``) written, created, renamed or deleted, the directory itself
deleted or moved; lock files opened and closed by every append, index writes and reads
are ignored. Where Linux's inotify is not there (another OS), watchdog's observer is
used; where neither can start (watch limit reached), waits fall back to polling (the
Fetch handler looks again at least every ``POLL_INTERVAL``).

No lost wakeups: each partition directory has a change counter that every notify bumps.
A Fetch takes ``snapshot(paths)`` (which also starts watching them) *before* it reads,
and passes it to ``wait``: an append that landed between the read and the wait has
bumped the counter, and ``wait`` returns at once instead of sleeping through it.

Everything here runs on the event loop thread (watchdog's thread hands over through
``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import struct
from typing import Callable, Protocol

from ..storage import files

POLL_INTERVAL = 0.5

# inotify(7)
IN_MODIFY = 0x002
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
_MASK = (IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
         | IN_MOVE_SELF | IN_ONLYDIR)
_SELF = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name
_READ_SIZE = 64 * 1024
_LOG = files.LOG_SUFFIX.encode()


class _Watcher(Protocol):
    def watch(self, path: str) -> bool: ...
    def close(self) -> None: ...


class _Inotify:
    """Linux inotify through libc, read on the event loop (``loop.add_reader``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[str], None],
                 wake_all: Callable[[], None]):
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._add.restype = ctypes.c_int
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        self.fd = fd
        self.loop = loop
        self._wake = wake
        self._wake_all = wake_all
        self._paths: dict[int, str] = {}  # watch descriptor -> partition directory
        self._wds: dict[str, int] = {}
        loop.add_reader(fd, self._read)

    def watch(self, path: str) -> bool:
        if path in self._wds:
            return True
        wd = self._add(self.fd, os.fsencode(path), _MASK)
        if wd < 0:
            e = ctypes.get_errno()
            if e in (errno.ENOENT, errno.ENOTDIR):
                return True  # nothing to watch: the Fetch answers the missing partition
            return False  # the watch limit (ENOSPC), permissions: poll
        self._paths[wd] = path
        self._wds[path] = wd
        return True

    def _read(self) -> None:
        try:
            buf = os.read(self.fd, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        woken: set[str] = set()
        pos, end = 0, len(buf)
        while pos + _EVENT.size <= end:
            wd, mask, _cookie, n = _EVENT.unpack_from(buf, pos)
            name = buf[pos + _EVENT.size:pos + _EVENT.size + n].rstrip(b"\0")
            pos += _EVENT.size + n
            if mask & IN_Q_OVERFLOW:
                self._wake_all()
                continue
            path = self._paths.get(wd)
            if path is None:
                continue
            if mask & _SELF:
                woken.add(path)
                if mask & IN_IGNORED:  # the directory is gone: watch it again if re-made
                    del self._paths[wd]
                    self._wds.pop(path, None)
            elif name.endswith(_LOG):
                woken.add(path)
        for path in woken:
            self._wake(path)

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


class _Watchdog:
    """watchdog's observer (kqueue, FSEvents, ...) where inotify is not available."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[str], None]):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        def on_event(src: str | bytes) -> None:
            if isinstance(src, bytes):
                src = os.fsdecode(src)
            if src.endswith(files.LOG_SUFFIX):
                loop.call_soon_threadsafe(wake, os.path.dirname(src))

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.event_type not in ("opened", "closed_no_write"):
                    on_event(event.src_path)

        self._handler = _Handler()
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()
        self._watched: set[str] = set()

    def watch(self, path: str) -> bool:
        if path not in self._watched:
            try:
                self._observer.schedule(self._handler, path, recursive=False)
            except Exception:  # noqa: BLE001 - watch limit, directory gone
                return not os.path.isdir(path)
            self._watched.add(path)
        return True

    def close(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=2)


class Wakeups:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._waiters: dict[str, set[asyncio.Future[bool]]] = {}
        self._changes: dict[str, int] = {}  # partition directory -> notifies so far
        self._watcher: _Watcher | None = None
        self._started = False
        self.polling = False

    # ------------------------------------------------------------ appends
    def notify(self, path: str) -> None:
        """``path`` (a partition directory) changed: wake the Fetches waiting on it."""
        self._changes[path] = self._changes.get(path, 0) + 1
        waiters = self._waiters.get(path)
        if waiters:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(True)

    def wake_all(self) -> None:
        for path in list(self._waiters):
            self.notify(path)

    # ------------------------------------------------------------ waiting
    def _start(self) -> None:
        self._started = True
        try:
            self._watcher = _Inotify(self.loop, self.notify, self.wake_all)
            return
        except (OSError, AttributeError, TypeError):  # not Linux, no inotify in libc
            pass
        try:
            self._watcher = _Watchdog(self.loop, self.notify)
        except Exception:  # noqa: BLE001 - watchdog cannot start here: poll
            self.polling = True

    def snapshot(self, paths: list[str]) -> tuple[int, ...]:
        """Watch ``paths`` and return their change counters: take it before reading, pass
        it to ``wait`` after, and no append in between is missed."""
        if not self._started:
            self._start()
        if self._watcher is not None and not self.polling:
            for p in paths:
                if not self._watcher.watch(p):
                    self.polling = True
                    break
        changes = self._changes
        return tuple(changes.get(p, 0) for p in paths)

    async def wait(self, paths: list[str], timeout: float, since: tuple[int, ...]) -> bool:
        """Wait until one of ``paths`` changes after the ``snapshot`` ``since`` or
        ``timeout`` seconds pass; True if woken by a change (or one came before)."""
        changes = self._changes
        if any(changes.get(p, 0) != n for p, n in zip(paths, since)):
            return True
        fut: asyncio.Future[bool] = self.loop.create_future()
        for p in paths:
            self._waiters.setdefault(p, set()).add(fut)
        try:
            await asyncio.wait_for(fut, min(timeout, POLL_INTERVAL) if self.polling else timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            for p in paths:
                s = self._waiters.get(p)
                if s is not None:
                    s.discard(fut)
                    if not s:
                        del self._waiters[p]

    def close(self) -> None:
        self.wake_all()
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
