"""File locks (``flock``) that coordinate fslog processes.

- ``BlockingLock``: a partition's writer lock. Blocks in the kernel, so a waiting producer
  gets the lock the moment the holder lets go (a polling lock would add tens of ms per
  hand-over between producers sharing a partition). Reentrant within one object.
- ``ProcessLock``: a non-blocking lock a process holds for as long as something is true
  (a group member is alive, a member owns a partition). The kernel drops it when the
  process dies, however it dies — which is how others notice.
- ``is_locked_by_someone``: probes whether any open file holds the lock.
- ``publish_json`` / ``read_published``: a holder that tells others about itself (a
  running server, a served group) keeps one JSON document in its lock file, rewritten
  in place; readers take no lock and read a document racing a rewrite again.

Lock files are opened with O_NOFOLLOW: a lock file replaced by a symbolic link is refused,
never followed out of the root.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time

from ..errors import UnsafePathError
from .files import FILE_MODE

_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def _open(path: str, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePathError(
                f"{path} is a symbolic link: fslog does not follow links for its lock files; "
                f"remove it") from None
        raise


class BlockingLock:
    def __init__(self, path: str):
        self.path = path
        self._fd = -1
        self._depth = 0

    def acquire(self) -> None:
        if self._depth:
            self._depth += 1
            return
        fd = _open(self.path)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    break
                except InterruptedError:
                    continue
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._depth = 1

    def release(self) -> None:
        if not self._depth:
            return
        self._depth -= 1
        if self._depth == 0:
            fd, self._fd = self._fd, -1
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class ProcessLock:
    """A non-blocking flock on a file: held by this process until ``release``."""

    def __init__(self, path: str):
        self.path = path
        self.fd = -1

    def try_acquire(self) -> bool:
        if self.fd >= 0:
            return True
        fd = _open(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in _BUSY:
                return False
            raise
        self.fd = fd
        return True

    def set_holder(self, text: str) -> None:
        """Write who holds the lock into the lock file (for others to read). Emptied
        first: a reader racing the rewrite sees nothing rather than a mix of two holders."""
        if self.fd >= 0:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, text.encode(), 0)

    def publish_json(self, doc: dict) -> None:
        """Keep ``doc`` in the lock file for ``read_published``: written over the old
        document, then cut to length, so a racing reader sees the old one, the new one or
        a mix that does not parse (and reads again) — never an empty file. A failed write
        (a full disk) is ignored: readers see the previous document, the holder runs on."""
        if self.fd < 0:
            return
        data = (json.dumps(doc, sort_keys=True) + "\n").encode()
        try:
            os.pwrite(self.fd, data, 0)
            os.ftruncate(self.fd, len(data))
        except OSError:
            pass

    def release_clearing(self) -> None:
        """Empty the published document, then let go of the lock."""
        try:
            self.set_holder("")
        except OSError:
            pass
        self.release()

    def release(self) -> None:
        if self.fd >= 0:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = -1

    @property
    def held(self) -> bool:
        return self.fd >= 0


def read_holder(path: str) -> str | None:
    """What ``ProcessLock.set_holder`` wrote into a lock file, or None."""
    try:
        fd = _open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace") or None
    finally:
        os.close(fd)


def read_published(path: str, attempts: int = 3) -> dict | None:
    """The document the live holder of ``path`` published with ``publish_json``; None
    when nobody holds the lock (a stale file is never read), ``{}`` when the holder has
    published nothing readable yet. A read racing a rewrite is read again."""
    if not is_locked_by_someone(path):
        return None
    for attempt in range(attempts):
        try:
            text = read_holder(path) or ""
        except OSError:
            return {}
        try:
            doc = json.loads(text) if text.strip() else {}
        except ValueError:
            if attempt + 1 < attempts:
                time.sleep(0.01)
            continue
        return doc if isinstance(doc, dict) else {}
    return {}


def is_locked_by_someone(path: str) -> bool:
    """True if an open file (of any process, this one included) holds an flock on ``path``."""
    try:
        fd = _open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in _BUSY:
            return True
        raise
    finally:
        os.close(fd)  # closing drops the probe's lock if it got one
    return False
