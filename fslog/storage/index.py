"""Offset and time indexes: the ``.index`` and ``.timeindex`` sidecars of a segment.

Both are sparse, sorted, append-only arrays of fixed-width big-endian entries, Kafka's
layout::

    .index      entry = relative offset (int32) | position (int32)       8 bytes
    .timeindex  entry = timestamp ms   (int64) | relative offset (int32) 12 bytes

"relative offset" is the record offset minus the segment's base offset. An offset-index
entry says "the batch starting at byte ``position`` of the .log begins at offset
base+rel". A time-index entry says "by the batch starting at offset base+rel, the
greatest timestamp in this segment reached ``timestamp``".

Index files carry no checksum: they are derived data, rebuilt from the .log when missing
or inconsistent. The number of entries is the file size divided by the entry width, so
there is no preallocation and nothing to trim. Writers append entries under the
partition lock; readers map a snapshot of the file (``IndexView``) and never lock.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct

from ..errors import FslogError
from .files import FILE_MODE

OFFSET_ENTRY = struct.Struct(">ii")
TIME_ENTRY = struct.Struct(">qi")
OFFSET_WIDTH = OFFSET_ENTRY.size
TIME_WIDTH = TIME_ENTRY.size


class IndexView:
    """A read-only snapshot of an index file, memory-mapped, with lookup by binary search."""

    def __init__(self, path: str, entry: struct.Struct):
        self.path = path
        self._entry = entry
        self._map: mmap.mmap | bytes = b""
        self.entries = 0
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return  # missing index: no entries; callers scan from the start
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return  # a directory (or device) where the index belongs: no entries either
            size = st.st_size
            size -= size % entry.size
            if size:
                self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
                self.entries = size // entry.size
        finally:
            os.close(fd)

    def entry(self, i: int) -> tuple[int, int]:
        return self._entry.unpack_from(self._map, i * self._entry.size)

    def lookup(self, key: int) -> tuple[int, int] | None:
        """Greatest entry whose first field is <= key, or None if there is none."""
        lo, hi = 0, self.entries - 1
        found = None
        unpack = self._entry.unpack_from
        width = self._entry.size
        m = self._map
        while lo <= hi:
            mid = (lo + hi) >> 1
            e = unpack(m, mid * width)
            if e[0] <= key:
                found = e
                lo = mid + 1
            else:
                hi = mid - 1
        return found

    def last(self) -> tuple[int, int] | None:
        return self.entry(self.entries - 1) if self.entries else None

    def __iter__(self):
        for i in range(self.entries):
            yield self.entry(i)

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()
        self._map = b""
        self.entries = 0


def open_offset_index(path: str) -> IndexView:
    return IndexView(path, OFFSET_ENTRY)


def open_time_index(path: str) -> IndexView:
    return IndexView(path, TIME_ENTRY)


class IndexWriter:
    """Appends entries to one index file. Callers hold the partition lock."""

    def __init__(self, path: str, entry: struct.Struct):
        self.path = path
        self._entry = entry
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, FILE_MODE)
        except IsADirectoryError:
            raise not_a_file_error(path) from None
        size = os.fstat(self.fd).st_size
        if size % entry.size:
            # A torn entry from a crash mid-write: drop it.
            size -= size % entry.size
            os.ftruncate(self.fd, size)
        self.entries = size // entry.size

    def last(self) -> tuple[int, int] | None:
        if not self.entries:
            return None
        return self._entry.unpack(os.pread(self.fd, self._entry.size,
                                           (self.entries - 1) * self._entry.size))

    def append(self, a: int, b: int) -> None:
        os.write(self.fd, self._entry.pack(a, b))
        self.entries += 1

    def append_many(self, entries: list[tuple[int, int]]) -> None:
        if entries:
            os.write(self.fd, b"".join(self._entry.pack(a, b) for a, b in entries))
            self.entries += len(entries)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def not_a_file_error(path: str) -> FslogError:
    return FslogError(f"{path}: not a regular file (a directory?) where fslog keeps an index; "
                      f"move it away, and the next writer rebuilds the index from the log")


def write_index_file(path: str, entry: struct.Struct, entries: list[tuple[int, int]],
                     sync: bool = False) -> None:
    """Write a whole index file of ``entries`` (created or truncated; fsynced if ``sync``)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    except IsADirectoryError:
        raise not_a_file_error(path) from None
    try:
        os.write(fd, b"".join(entry.pack(a, b) for a, b in entries))
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)

