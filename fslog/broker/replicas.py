"""The leader's view of its followers: Kafka's replica manager, leader side.

A follower (``fslog replicate --from HOST:PORT``) fetches with its replica id (>= 0).
It fsyncs what it appended before it fetches further, so the offset it fetches from is
its durable log-end offset; each such Fetch is noted here (``note_fetch``). From that:

- in sync: a follower that was caught up (fetched from the leader's log-end offset) within
  ``replica.lag.time.max.ms`` (30 s, Kafka's default); the leader itself always is;
- the high watermark of a partition: the least durable position of the in-sync
  followers, at most the leader's log-end offset (with no followers: the log-end offset);
  network consumers read up to it;
- acks=all (``wait_replicated``): with fewer in-sync replicas than the topic's
  ``min.insync.replicas`` the produce is refused before the append (NOT_ENOUGH_REPLICAS);
  otherwise the answer waits until every in-sync follower has fetched past the batch
  (NOT_ENOUGH_REPLICAS_AFTER_APPEND if the in-sync set fell below the minimum meanwhile,
  REQUEST_TIMED_OUT after the producer's timeout).
- ``snapshot``: every follower with its position, lag in records and in milliseconds,
  and whether it is in sync (``fslog status`` and ``fslog top`` show it).

Lives on the server's event loop: ``note_fetch`` and ``wait_replicated`` are called from
handlers (loop thread); ``snapshot`` and ``high_watermark`` may be called from any thread
(a lock guards the tables).
"""

from __future__ import annotations

import asyncio
import threading
import time

LAG_TIME_MAX_MS = 30_000  # Kafka's replica.lag.time.max.ms


def now_ms() -> int:
    return int(time.monotonic() * 1000)


class _Follower:
    __slots__ = ("caught_up_ms", "fetch_ms", "offset")

    def __init__(self):
        self.offset = 0
        self.fetch_ms = 0
        self.caught_up_ms = -1 << 62


class Replicas:
    def __init__(self, lag_time_max_ms: int = LAG_TIME_MAX_MS, clock=now_ms):
        self.lag_time_max_ms = lag_time_max_ms
        self.clock = clock
        self._lock = threading.Lock()
        self._followers: dict[tuple[str, int], dict[int, _Follower]] = {}
        self._waiters: dict[tuple[str, int], list[tuple[int, asyncio.Future]]] = {}

    # ------------------------------------------------------------ followers fetch
    def note_fetch(self, topic: str, partition: int, replica_id: int, fetch_offset: int,
                   leader_end: int) -> None:
        """A follower fetched ``topic``/``partition`` from ``fetch_offset`` (its durable
        position) while the leader's log ended at ``leader_end``."""
        now = self.clock()
        key = (topic, partition)
        with self._lock:
            f = self._followers.setdefault(key, {}).get(replica_id)
            if f is None:
                f = self._followers[key][replica_id] = _Follower()
            f.offset = fetch_offset
            f.fetch_ms = now
            if fetch_offset >= leader_end:
                f.caught_up_ms = now
        self._wake(key)

    def forget(self, topic: str, partition: int | None = None) -> None:
        """A deleted topic (or partition): its followers are no longer tracked."""
        with self._lock:
            for key in [k for k in self._followers if k[0] == topic and
                        (partition is None or k[1] == partition)]:
                del self._followers[key]

    # ------------------------------------------------------------ in sync, high watermark
    def _in_sync(self, key, now: int) -> list[_Follower]:
        return [f for f in self._followers.get(key, {}).values()
                if now - f.caught_up_ms <= self.lag_time_max_ms]

    def isr_size(self, topic: str, partition: int) -> int:
        """In-sync replicas of the partition, the leader included."""
        with self._lock:
            return 1 + len(self._in_sync((topic, partition), self.clock()))

    def high_watermark(self, topic: str, partition: int, leader_end: int) -> int:
        with self._lock:
            isr = self._in_sync((topic, partition), self.clock())
            if not isr:
                return leader_end
            return min(leader_end, min(f.offset for f in isr))

    # ------------------------------------------------------------ acks=all
    def enough(self, topic: str, partition: int, min_isr: int) -> bool:
        """Whether acks=all may append now (Kafka: NOT_ENOUGH_REPLICAS otherwise)."""
        return self.isr_size(topic, partition) >= min_isr

    async def wait_replicated(self, topic: str, partition: int, offset: int, min_isr: int,
                              timeout: float) -> str | None:
        """Wait until every in-sync follower holds everything before ``offset`` (the
        batch's next offset). Returns None when done, "not_enough_replicas_after_append"
        or "request_timed_out"."""
        key = (topic, partition)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            with self._lock:
                isr = self._in_sync(key, self.clock())
                if 1 + len(isr) < min_isr:
                    return "not_enough_replicas_after_append"
                if all(f.offset >= offset for f in isr):
                    return None
                if left <= 0:
                    return "request_timed_out"
                fut = loop.create_future()
                self._waiters.setdefault(key, []).append((offset, fut))
            # woken by the next follower fetch (``_wake``), and at least every second:
            # a follower can fall out of sync by time alone
            timer = loop.call_later(min(left, 1.0), _set, fut)
            try:
                await fut
            finally:
                timer.cancel()
                with self._lock:
                    ws = self._waiters.get(key)
                    if ws is not None:
                        ws[:] = [w for w in ws if w[1] is not fut]
                        if not ws:
                            del self._waiters[key]

    def _wake(self, key) -> None:
        with self._lock:
            ws = self._waiters.pop(key, [])
        if not ws:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for _off, fut in ws:
            if fut.done():
                continue
            loop = fut.get_loop()
            if loop is running:
                fut.set_result(None)  # on the loop (a Fetch handler): no hand-over
            else:
                loop.call_soon_threadsafe(_set, fut)

    # ------------------------------------------------------------ what status shows
    def tracked(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._followers)

    def report(self, storage) -> list[dict]:
        """``snapshot`` with the leader's log-end offsets (blocking: a worker thread)."""
        ends = {}
        for topic, p in self.tracked():
            try:
                ends[(topic, p)] = storage.offsets(topic, p)[1]
            except Exception:  # a topic deleted meanwhile
                self.forget(topic, p)
        return self.snapshot(ends)

    def snapshot(self, leader_ends: dict[tuple[str, int], int] | None = None) -> list[dict]:
        now = self.clock()
        out = []
        with self._lock:
            for (topic, p), fs in sorted(self._followers.items()):
                end = (leader_ends or {}).get((topic, p))
                for rid, f in sorted(fs.items()):
                    out.append({"topic": topic, "partition": p, "replica_id": rid,
                                "offset": f.offset,
                                "lag_records": None if end is None else max(0, end - f.offset),
                                "lag_ms": max(0, now - f.caught_up_ms) if f.caught_up_ms > 0 else None,
                                "last_fetch_ms_ago": now - f.fetch_ms,
                                "in_sync": now - f.caught_up_ms <= self.lag_time_max_ms})
        return out


def _set(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


# ---------------------------------------------------------------- the handlers' hooks

def on_fetch(replicas: Replicas, replica_id: int, parts) -> None:
    """After a Fetch read its partitions (objects with topic, index, offset, hw, code,
    records: a list of batches, and size: their bytes): a follower's fetch is noted; a
    consumer's is cut at the high watermark."""
    for p in parts:
        if p.code != 0:
            continue
        if replica_id >= 0:
            replicas.note_fetch(p.topic, p.index, replica_id, p.offset, p.hw)
            continue
        hw = replicas.high_watermark(p.topic, p.index, p.hw)
        if hw < p.hw:
            p.hw = hw
            p.records = [_below(b"".join(p.records), hw)]
            p.size = len(p.records[0])


def _below(records: bytes, hw: int) -> bytes:
    """The whole batches of ``records`` that end before ``hw``."""
    from ..records import batch as rb
    pos = 0
    n = len(records)
    while n - pos >= rb.HEADER_SIZE:
        h = rb.read_header(records, pos)
        if h.last_offset >= hw or pos + h.size > n:
            break
        pos += h.size
    return records[:pos]


def min_insync(config) -> int:
    return int(config.get("min.insync.replicas"))
