"""Fetch (key 1), v4-12: whole batches as they are on disk, never decoded.

For each partition: the batches from the one holding the fetch offset, up to the
partition's and the request's max_bytes, but at least one batch (KIP-74: a batch larger
than max_bytes still comes whole, so a consumer never gets stuck).
OFFSET_OUT_OF_RANGE below the log start or past the log-end offset; the high watermark
and the last stable offset are the log-end offset (no replication, no transactions:
read_committed reads what read_uncommitted reads). Damage in the log gives
KAFKA_STORAGE_ERROR for that partition (after the good batches before it) and a log line.

Long poll: with fewer than min_bytes available the response is deferred (the
connection goes on with other requests) until appends bring min_bytes, max_wait passes
or the server stops; appends by this server or any other process wake it within
milliseconds (``wakeup.py``). No fetch sessions (KIP-227): session id 0, so clients
send full requests.

Reads from the tail of a log (a consumer or follower that has caught up, a long poll
just woken) run on the event loop, at most ``QUICK_READ`` bytes (``_on_loop``); others
on a worker thread.
"""

from __future__ import annotations

import struct
import time

from kio.schema.errors import ErrorCode

from ..errors import FslogError
from ..records.batch import uvarint
from .handlers import Deferred, RawFrame, RequestContext, handles
from .metadata import name_error
from .replicas import on_fetch
from .storage import OutOfRange

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_I16I32 = struct.Struct(">hi")
_PART = struct.Struct(">ihqq")  # partition_index, error_code, high_watermark, last_stable
QUICK_READ = 1 << 20  # a read of at most this much from a partition's tail runs on the loop
QUICK_PARTS = 16  # ... from at most this many partitions, when the request allows more bytes


class _Part:
    __slots__ = ("topic", "index", "offset", "max_bytes", "code", "hw", "start", "records",
                 "size")

    def __init__(self, topic: str, index: int, offset: int, max_bytes: int):
        self.topic = topic
        self.index = index
        self.offset = offset
        self.max_bytes = max_bytes
        self.code = ErrorCode.none
        self.hw = -1
        self.start = -1
        self.records: list[bytes] = []  # whole batches, each as read
        self.size = 0  # their bytes


def _read_all(ctx: RequestContext, parts: list[_Part], max_bytes: int) -> int:
    """Fill every partition with what is there now (worker thread); return the bytes."""
    storage = ctx.storage
    total = 0
    for p in parts:
        p.records, p.size = [], 0
        try:
            t = storage.topic(p.topic)  # (InvalidNameError for a bad name)
        except (FslogError, TypeError):
            t = None
        if t is None or not 0 <= p.index < t.partition_count:
            p.code = ErrorCode.unknown_topic_or_partition
            continue
        budget = min(p.max_bytes, max_bytes - total)
        try:
            if budget <= 0 and total:
                p.start, p.hw = storage.offsets(p.topic, p.index)
                p.code = ErrorCode.none
                continue
            got = storage.read(p.topic, p.index, p.offset, max(budget, 1))
        except OutOfRange as e:
            p.code, p.start, p.hw = ErrorCode.offset_out_of_range, e.start, e.end
            continue
        except (FslogError, OSError) as e:
            ctx.log.error("serve: fetch %s/%d at %d: %s", p.topic, p.index, p.offset, e)
            p.code = ErrorCode.kafka_storage_error
            continue
        p.code, p.start, p.hw = ErrorCode.none, got.log_start, got.log_end
        p.records, p.size = got.records, got.size
        if got.error is not None:
            ctx.log.error("serve: fetch %s/%d: %s", p.topic, p.index, got.error)
            if not got.records:
                p.code = ErrorCode.kafka_storage_error
        total += got.size
    return total


def _small(parts: list[_Part], max_bytes: int) -> bool:
    return min(sum(p.max_bytes for p in parts), max_bytes) <= QUICK_READ


def _on_loop(ctx: RequestContext, parts: list[_Part], max_bytes: int, min_bytes: int,
             woken: bool = False) -> int | None:
    """Read on the event loop, saving a hand-over to a worker thread and back (two per
    acks=all round with a follower: the batch to it, its next position back)? Returns the
    max_bytes to read with there, or None for a worker thread.

    On the loop: reads from the tail of each partition (a consumer or follower that has
    caught up: what comes was just written, in the page cache), or just woken by an
    append, of at most ``QUICK_READ`` bytes. A request that allows more (a follower asks
    for 8 MiB) is read with ``QUICK_READ`` there — fewer bytes than max_bytes is a valid
    answer, it fetches again — unless its min_bytes needs more than that, or it reads
    more than ``QUICK_PARTS`` partitions."""
    small = _small(parts, max_bytes)
    if not small and (min_bytes > QUICK_READ or len(parts) > QUICK_PARTS):
        return None
    if not woken:
        at_tail = ctx.storage.at_tail
        if not all(at_tail(p.topic, p.index, p.offset) for p in parts):
            return None
    return max_bytes if small else QUICK_READ


def _response(ctx: RequestContext, request, parts: list[_Part]) -> RawFrame:
    """The whole response frame, encoded here rather than by kio: the batches go to the
    socket as they were read, never copied into one buffer (see ``encode_response``)."""
    aborted = getattr(request, "isolation_level", 0) == 1
    by_topic: dict[str, list[_Part]] = {}
    for p in parts:
        by_topic.setdefault(p.topic, []).append(p)
    return RawFrame(encode_response(ctx.api_version, ctx.correlation_id, by_topic, aborted))


def encode_response(version: int, correlation_id: int, by_topic: dict[str, list[_Part]],
                    aborted: bool) -> list[bytes]:
    """A FetchResponse frame (v4-12) as a list of buffers to write one after another.

    Kafka's layout (the numbers are the versions that have a field)::

        size int32, correlation_id int32, [header tagged fields: v12]
        throttle_time_ms int32, error_code int16 (v7+), session_id int32 (v7+)
        responses: [topic string,
                    partitions: [partition_index int32, error_code int16,
                                 high_watermark int64, last_stable_offset int64,
                                 log_start_offset int64 (v5+),
                                 aborted_transactions nullable [producer_id int64,
                                                                first_offset int64],
                                 preferred_read_replica int32 (v11+),
                                 records nullable bytes, [tagged fields: v12]],
                    [tagged fields: v12]]
        [tagged fields: v12]

    v12 is flexible: arrays, strings and bytes have uvarint lengths + 1 (0: null) and
    every struct ends with its tagged fields (none here). Before v12: int32 counts and
    int32/int16 lengths, -1 for null. No aborted transactions ever: an empty array for
    read_committed, null for read_uncommitted, as Kafka answers without transactions.
    """
    flexible = version >= 12
    out: list[bytes] = []
    head = bytearray()
    head += _I32.pack(correlation_id)
    if flexible:
        head += b"\0"
    head += _I32.pack(0)  # throttle_time_ms
    if version >= 7:
        head += _I16I32.pack(0, 0)  # error_code, session_id
    head += uvarint(len(by_topic) + 1) if flexible else _I32.pack(len(by_topic))
    for topic, ps in by_topic.items():
        name = topic.encode()
        head += (uvarint(len(name) + 1) if flexible else _I16.pack(len(name))) + name
        head += uvarint(len(ps) + 1) if flexible else _I32.pack(len(ps))
        for p in ps:
            head += _PART.pack(p.index, p.code, p.hw, p.hw)
            if version >= 5:
                head += _I64.pack(p.start)
            if flexible:
                head += b"\x01" if aborted else b"\x00"
            else:
                head += _I32.pack(0 if aborted else -1)
            if version >= 11:
                head += _I32.pack(-1)  # preferred_read_replica
            head += uvarint(p.size + 1) if flexible else _I32.pack(p.size)
            if p.records:
                out.append(bytes(head))
                out.extend(p.records)
                head = bytearray()
            if flexible:
                head += b"\0"  # the partition's tagged fields
        if flexible:
            head += b"\0"  # the topic's tagged fields
    if flexible:
        head += b"\0"
    out.append(bytes(head))
    size = sum(map(len, out))
    out[0] = _I32.pack(size) + out[0]
    return out



@handles(1)
async def fetch(ctx: RequestContext, request):
    parts = [_Part(t.topic, p.partition, p.fetch_offset, p.partition_max_bytes)
             for t in request.topics for p in t.partitions]
    max_bytes = getattr(request, "max_bytes", 0x7FFFFFFF)
    if max_bytes <= 0:
        max_bytes = 0x7FFFFFFF
    min_bytes = request.min_bytes
    wait = request.max_wait.total_seconds()
    replica_id = getattr(request, "replica_id", -1)
    wakeups = ctx.server.wakeups
    paths = [ctx.storage.partition_path(p.topic, p.index) for p in parts
             if name_error(p.topic) is None]
    seen = wakeups.snapshot(paths)  # before reading: an append after it wakes the wait
    quick = _on_loop(ctx, parts, max_bytes, min_bytes)
    if quick is not None:
        total = _read_all(ctx, parts, quick)
    else:
        total = await ctx.run(_read_all, ctx, parts, max_bytes)
    on_fetch(ctx.server.replicas, replica_id, parts)
    if total >= min_bytes or wait <= 0 or not parts or \
            any(p.code != ErrorCode.none for p in parts) or ctx.server.stopping.is_set():
        return _response(ctx, request, parts)

    async def long_poll():
        nonlocal seen
        deadline = time.monotonic() + wait
        stopping = ctx.server.stopping
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or stopping.is_set():
                break
            woken = await wakeups.wait(paths, left, seen)
            seen = wakeups.snapshot(paths)
            quick = _on_loop(ctx, parts, max_bytes, min_bytes, woken) if woken else None
            if quick is not None:
                # just appended (in the page cache), at most 1 MiB: read on the loop
                got = _read_all(ctx, parts, quick)
            else:
                got = await ctx.run(_read_all, ctx, parts, max_bytes)
            on_fetch(ctx.server.replicas, replica_id, parts)
            if got >= min_bytes or any(p.code != ErrorCode.none for p in parts):
                break
        return _response(ctx, request, parts)

    return Deferred(long_poll())
