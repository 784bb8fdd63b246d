"""A running ``fslog serve``'s entry in the root: how ``fslog status`` and ``fslog top`` find it.

Layout::

    ROOT/serve/server.lock   flock held by the running ``fslog serve`` for its whole life;
                             its content is a JSON line: address, advertised address,
                             node id, pid, host, start time, open connections, requests
                             served and requests/s, rewritten about once a second

One server per root: a second ``fslog serve`` on the same root finds the lock held and
refuses with one line naming the running one (two servers would each keep their own
idempotent-producer state and, later, group coordinator state for the same files). The
kernel drops the lock when the server dies, however it dies, so a stale file is never
mistaken for a live server. Readers take no lock. Used by the server's event loop
thread and by any number of reading processes.
"""

from __future__ import annotations

import os
import time

from ..errors import FslogError
from . import files
from .locks import ProcessLock, read_published


class ServerRunningError(FslogError):
    """Another ``fslog serve`` holds the root."""


def lock_path(root: str) -> str:
    return os.path.join(files.serve_dir(root), files.SERVER_LOCK_FILE)


class Registration:
    def __init__(self, root: str, info: dict):
        files.ensure_dir(files.serve_dir(root), root)
        self.path = lock_path(root)
        self._lock = ProcessLock(self.path)
        if not self._lock.try_acquire():
            other = running_servers(root)
            who = (f"pid {other[0].get('pid')} listening on {other[0].get('listen')}"
                   if other else "another process")
            raise ServerRunningError(
                f"fslog serve is already running on {root} ({who}); one server per root: "
                f"point clients at it, or stop it first")
        self.info = dict(info, pid=os.getpid(), started_at=time.time())
        self.update(connections=0, requests=0, requests_per_s=0.0)

    def update(self, **counters) -> None:
        self.info.update(counters, updated_at=time.time())
        self._lock.publish_json(self.info)  # a full disk: status shows older figures

    def close(self) -> None:
        self._lock.release_clearing()


def running_servers(root: str) -> list[dict]:
    """The live server of ``root`` (a list: empty when none runs), with its uptime."""
    info = read_published(lock_path(root))
    if info is None:
        return []
    if info.get("started_at"):
        info["uptime_s"] = round(max(0.0, time.time() - info["started_at"]), 1)
    return [info]
