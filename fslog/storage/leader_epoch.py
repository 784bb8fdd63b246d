"""Leader epochs of a partition: Kafka's leader-epoch cache and its checkpoint file.

A leader epoch numbers a period during which one root was the leader (the writer) of a
partition. Every batch carries the epoch of the leader that appended it in its
``partitionLeaderEpoch`` field (not covered by the CRC: the append path stamps it, as it
patches the base offset). The checkpoint maps each epoch to the first offset written in it,
so that, given an epoch, this log can say where that epoch ended (Kafka's
OffsetForLeaderEpoch): a deposed leader asks the new leader where its own latest epoch
ended there, and truncates its log to that offset — the tail it wrote that was never
replicated goes, and the logs converge.

On disk, ``PARTITION_DIR/leader-epoch-checkpoint``, Kafka's own text format::

    0            version
    2            number of entries
    0 0          epoch, start offset (ascending in both)
    1 4211

written atomically (temp file, fsync, rename). A partition without the file has never
changed leader: all of it is epoch 0 (what fslog writes when no epoch was ever begun), so
roots written before epochs existed need no migration.

Who changes it: the partition's writer, under the partition lock — ``begin_leadership``
(a root taking over as leader: promotion, ``fslog serve`` on a follower root), a follower
appending batches of a newer epoch, truncations (``replica.py``). Reading takes no lock.
"""

from __future__ import annotations

import os

from ..errors import FslogError
from . import files

CHECKPOINT_FILE = files.LEADER_EPOCH_FILE
UNDEFINED = -1  # Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET


def checkpoint_path(partition) -> str:
    return os.path.join(partition.path, CHECKPOINT_FILE)


def read_entries(path: str) -> list[tuple[int, int]]:
    """The (epoch, start offset) entries of a checkpoint file; [] if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return []
    with os.fdopen(fd, "rb") as f:
        text = f.read().decode("ascii", errors="replace")
    try:
        lines = text.split("\n")
        if lines[0].strip() != "0":
            raise ValueError(f"version {lines[0].strip()!r}")
        n = int(lines[1])
        out = []
        for line in lines[2:2 + n]:
            e, o = line.split()
            out.append((int(e), int(o)))
        if len(out) != n:
            raise ValueError("fewer entries than announced")
        return out
    except (ValueError, IndexError) as e:
        raise FslogError(f"{path}: unreadable leader-epoch checkpoint ({e}); move it away "
                         f"(the partition is then read as epoch 0 throughout)") from None


def write_entries(path: str, entries: list[tuple[int, int]]) -> None:
    body = "0\n%d\n%s" % (len(entries), "".join(f"{e} {o}\n" for e, o in entries))
    files.write_atomic(path, body.encode("ascii"))


def entries(partition) -> list[tuple[int, int]]:
    """The partition's epochs; a partition that never changed leader is epoch 0 from its
    log start offset."""
    got = read_entries(checkpoint_path(partition))
    return got or [(0, partition.start_offset())]


def latest_epoch(partition) -> int:
    return entries(partition)[-1][0]


def end_offset_for(partition, epoch: int, log_end: int | None = None) -> tuple[int, int]:
    """Kafka's OffsetForLeaderEpoch on this log: (the greatest epoch <= ``epoch`` this log
    knows, the offset where it ended here — the start of the next epoch, or the log-end
    offset for the latest). (UNDEFINED, UNDEFINED) if ``epoch`` is older than every epoch
    this log holds."""
    es = entries(partition)
    if log_end is None:
        log_end = partition.end_offset()
    found = None
    for i, (e, _start) in enumerate(es):
        if e <= epoch:
            found = i
        else:
            break
    if found is None:
        return UNDEFINED, UNDEFINED
    if found == len(es) - 1:
        return es[found][0], log_end
    return es[found][0], es[found + 1][1]


# ------------------------------------------------------------ changes (under the partition lock)

def assign(partition, epoch: int, start: int) -> bool:
    """Note that ``epoch`` begins at ``start`` (a follower appending a batch of a newer epoch);
    True if the checkpoint changed. Entries that start at or after ``start`` are superseded."""
    path = checkpoint_path(partition)
    es = read_entries(path)
    if es and es[-1][0] >= epoch:
        return False
    if not es:
        log_start = partition.start_offset()
        if start > log_start:
            es = [(0, log_start)]  # what came before was epoch 0 (the file did not exist)
    es = [(e, o) for e, o in es if o < start and e < epoch]
    es.append((epoch, start))
    write_entries(path, es)
    return True


def truncate_from_end(partition, end: int) -> None:
    """The log was truncated to ``end``: epochs that began at or after it are gone."""
    path = checkpoint_path(partition)
    es = read_entries(path)
    keep = [(e, o) for e, o in es if o < end]
    if keep != es:
        write_entries(path, keep)


def truncate_from_start(partition, start: int) -> None:
    """The log start offset moved to ``start``: the epoch in force there now starts there."""
    path = checkpoint_path(partition)
    es = read_entries(path)
    if not es or es[0][1] >= start:
        return
    before = [x for x in es if x[1] < start]
    after = [x for x in es if x[1] >= start]
    keep = [(before[-1][0], start)] + after
    if after and after[0][1] == start:
        keep = after
    write_entries(path, keep)


def clear(partition) -> None:
    try:
        os.unlink(checkpoint_path(partition))
    except FileNotFoundError:
        pass


def begin_leadership(partition) -> int:
    """Start a new leader epoch on this partition (a root taking over as leader): the next
    epoch after every one this log holds, starting at the log-end offset. Returns it.

    Takes the partition's writer lock. Batches appended from now on carry the new epoch
    (``Partition.append`` stamps it), so a deposed leader can later find where its log and
    this one diverged. ``fslog serve`` and ``fslog promote`` call it through
    ``replica.promote``; call it directly for one partition."""
    partition.create_dir()
    with partition._lock:
        path = checkpoint_path(partition)
        es = read_entries(path)
        end = partition.end_offset()
        start = partition.start_offset()
        if not es and end > start:
            es = [(0, start)]
        new = (es[-1][0] + 1) if es else 1
        es = [(e, o) for e, o in es if o < end]
        es.append((new, end))
        write_entries(path, es)
        return new


class EpochStamp:
    """The epoch the leader path stamps into appended batches, re-read only when the
    checkpoint file changed (one stat per append)."""

    def __init__(self, partition):
        self.path = checkpoint_path(partition)
        self._key: tuple | None = None
        self.epoch = 0

    def current(self) -> int:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._key = None
            self.epoch = 0
            return 0
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            es = read_entries(self.path)
            self.epoch = es[-1][0] if es else 0
            self._key = key
        return self.epoch
