"""Waiting for appends: wakes a tailing reader when a partition directory changes.

Uses watchdog (inotify on Linux) on the partition directories, non-recursively; each
append or roll produces an event that sets a flag. Where watchdog cannot start (no
inotify, watch limit reached) it falls back to polling every ``poll_interval`` seconds.
Idle CPU is near zero either way. One ``AppendWaiter`` per reader; thread-safe ``wait``.
"""

from __future__ import annotations

import threading


class AppendWaiter:
    def __init__(self, paths: list[str], poll_interval: float = 0.25):
        self._event = threading.Event()
        self._observer = None
        self.poll_interval = poll_interval
        self.polling = False
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            waiter = self

            class _Handler(FileSystemEventHandler):
                def on_any_event(self, event):
                    waiter._event.set()

            obs = Observer()
            for p in paths:
                obs.schedule(_Handler(), p, recursive=False)
            obs.daemon = True
            obs.start()
            self._observer = obs
        except Exception:  # no inotify, too many watches: poll instead
            self._observer = None
            self.polling = True

    def wait(self, timeout: float | None) -> bool:
        """Wait until something changed or ``timeout`` passed; True if woken by a change.

        Even with inotify the wait is capped at a few seconds, so a missed event (a
        segment created before its directory was watched) costs at most that.
        """
        cap = self.poll_interval if self.polling else 2.0
        t = cap if timeout is None else min(timeout, cap)
        woke = self._event.wait(t)
        self._event.clear()
        return woke

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
