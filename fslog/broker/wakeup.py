"""Waking long-poll Fetches when a partition is appended to, by this or any process.

Appends made by this server call ``notify(path)`` directly. Appends by other processes
(``fslog produce`` in a shell, another library producer) are seen through inotify:
one watchdog observer watches, non-recursively, each partition directory a Fetch has
waited on (kept while the server runs: a few watches per partition), and hands each
event to the event loop. Where inotify cannot start, waits fall back to polling (the
Fetch handler looks again at least every ``POLL_INTERVAL``).

Waiters live on the event loop; ``notify`` runs there too (the observer thread uses
``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import os

POLL_INTERVAL = 0.5
_IGNORED = frozenset({"opened", "closed_no_write"})


class Wakeups:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._waiters: dict[str, set[asyncio.Future]] = {}
        self._watched: set[str] = set()
        self._observer = None
        self.polling = False

    def notify(self, path: str) -> None:
        waiters = self._waiters.get(path)
        if waiters:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(True)

    def _from_thread(self, path: str) -> None:
        if path in self._waiters:
            self.loop.call_soon_threadsafe(self.notify, path)

    def _watch(self, path: str) -> None:
        if path in self._watched or self.polling:
            return
        try:
            if self._observer is None:
                from watchdog.events import FileSystemEventHandler
                from watchdog.observers import Observer

                wake = self._from_thread

                class _Handler(FileSystemEventHandler):
                    def on_any_event(self, event):
                        # only writes, creations, renames, deletions: the server's own
                        # reads open and close segment files, and waking on those
                        # would make every long poll spin
                        if event.event_type in _IGNORED:
                            return
                        src = event.src_path
                        if isinstance(src, bytes):
                            src = os.fsdecode(src)
                        wake(os.path.dirname(src))

                self._handler = _Handler()
                obs = Observer()
                obs.daemon = True
                obs.start()
                self._observer = obs
            self._observer.schedule(self._handler, path, recursive=False)
            self._watched.add(path)
        except Exception:  # no inotify, watch limit reached, directory gone: poll
            if not os.path.isdir(path):
                return
            self.polling = True

    async def wait(self, paths: list[str], timeout: float) -> bool:
        """Wait until one of ``paths`` (partition directories) changes or ``timeout``
        seconds pass; True if woken by a change."""
        fut = self.loop.create_future()
        for p in paths:
            self._watch(p)
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

    def wake_all(self) -> None:
        for path in list(self._waiters):
            self.notify(path)

    def close(self) -> None:
        self.wake_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
