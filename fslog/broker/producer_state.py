"""Idempotent producers: producer ids, and per partition each producer's epoch and the
sequence numbers of its last batches, as Kafka's ProducerStateManager keeps them.

- ``allocate_id``: producer ids are handed out in blocks recorded in
  ``ROOT/serve/producer-ids`` (written atomically before a block is used), never below
  the current time in ms, so ids stay unique across restarts even if the file is lost.
- Per partition and producer id: the epoch and the last ``KEEP`` batches
  (first sequence, last sequence, base offset). A batch whose sequences match one of
  them is a retried duplicate: answered with the original base offset, not written
  again. Otherwise its first sequence must follow the last one (wrapping at 2^31-1), or
  start at 0 with a new epoch; an older epoch is fenced. A producer the partition has
  no state for is accepted at any sequence (as Kafka does after retention).
- After a restart the state is rebuilt, on a partition's first idempotent Produce, from
  the producer fields of the batches in its last two segments (``BrokerStorage.tail_headers``):
  the log itself is the snapshot.

Used on the event loop thread; ``allocate_id`` and the rebuild run on worker threads.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque

from ..storage import files

KEEP = 5  # Kafka keeps the metadata of the last 5 batches per producer
BLOCK = 1000
MAX_SEQ = (1 << 31) - 1

NONE, DUPLICATE = 0, 1
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


class _Producer:
    __slots__ = ("epoch", "batches")

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.batches: deque = deque(maxlen=KEEP)  # (first seq, last seq, base offset)


class PartitionProducers:
    def __init__(self):
        self.producers: dict[int, _Producer] = {}

    def check(self, pid: int, epoch: int, first_seq: int, last_seq: int) -> tuple[int, int]:
        """(verdict, base offset of the original for a duplicate): NONE to append,
        DUPLICATE, or a Kafka error code."""
        p = self.producers.get(pid)
        if p is None:
            return NONE, -1
        if epoch < p.epoch:
            return INVALID_PRODUCER_EPOCH, -1
        if epoch > p.epoch:
            return (NONE, -1) if first_seq == 0 else (OUT_OF_ORDER_SEQUENCE_NUMBER, -1)
        for f, la, base in p.batches:
            if f == first_seq and la == last_seq:
                return DUPLICATE, base
        if not p.batches:
            return NONE, -1
        last = p.batches[-1][1]
        if first_seq == (0 if last == MAX_SEQ else last + 1):
            return NONE, -1
        return OUT_OF_ORDER_SEQUENCE_NUMBER, -1

    def record(self, pid: int, epoch: int, first_seq: int, last_seq: int, base: int) -> None:
        p = self.producers.get(pid)
        if p is None or epoch > p.epoch:
            p = self.producers[pid] = _Producer(epoch)
        p.batches.append((first_seq, last_seq, base))


def last_sequence(first_seq: int, last_offset_delta: int) -> int:
    s = first_seq + last_offset_delta
    return s - MAX_SEQ - 1 if s > MAX_SEQ else s


class ProducerStates:
    def __init__(self, server):
        self.server = server
        self._parts: dict[tuple[str, int], PartitionProducers] = {}
        self._id_lock = threading.Lock()
        self._next = 0
        self._limit = 0

    async def partition(self, topic: str, partition: int) -> PartitionProducers:
        key = (topic, partition)
        st = self._parts.get(key)
        if st is None:
            built = await self.server.run_blocking(self._rebuild, topic, partition)
            st = self._parts.setdefault(key, built)
        return st

    def _rebuild(self, topic: str, partition: int) -> PartitionProducers:
        st = PartitionProducers()
        for h in self.server.storage.tail_headers(topic, partition):
            if h.producer_id >= 0 and h.base_sequence >= 0:
                st.record(h.producer_id, h.producer_epoch, h.base_sequence,
                          last_sequence(h.base_sequence, h.last_offset_delta), h.base_offset)
        return st

    def forget_topic(self, topic: str) -> None:
        for key in [k for k in self._parts if k[0] == topic]:
            del self._parts[key]

    def allocate_id(self) -> int:
        """A producer id never handed out before on this root (blocking: a file write)."""
        with self._id_lock:
            if self._next >= self._limit:
                root = self.server.log.root
                path = os.path.join(files.serve_dir(root), files.PRODUCER_IDS_FILE)
                stored = 0
                try:
                    with open(path, "rb") as f:
                        stored = int(json.loads(f.read())["next"])
                except (OSError, ValueError, KeyError, TypeError):
                    pass
                start = max(stored, int(time.time() * 1000))
                files.ensure_dir(files.serve_dir(root), root)
                files.write_atomic(path, json.dumps({"next": start + BLOCK}).encode() + b"\n")
                self._next, self._limit = start, start + BLOCK
            pid = self._next
            self._next += 1
            return pid

    def close(self) -> None:
        self._parts.clear()
