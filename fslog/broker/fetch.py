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
"""

from __future__ import annotations

import datetime
import time

from kio.schema.errors import ErrorCode

from ..errors import FslogError
from ..storage import files
from .handlers import Deferred, RequestContext, handles
from .metadata import name_error
from .protocol import build, nested
from .replicas import on_fetch
from .storage import OutOfRange

_ZERO = datetime.timedelta(0)
QUICK_READ = 1 << 20  # a read of at most this much from a partition's tail runs on the loop


class _Part:
    __slots__ = ("topic", "index", "offset", "max_bytes", "code", "hw", "start", "records")

    def __init__(self, topic: str, index: int, offset: int, max_bytes: int):
        self.topic = topic
        self.index = index
        self.offset = offset
        self.max_bytes = max_bytes
        self.code = ErrorCode.none
        self.hw = -1
        self.start = -1
        self.records = b""


def _read_all(ctx: RequestContext, parts: list[_Part], max_bytes: int) -> int:
    """Fill every partition with what is there now (worker thread); return the bytes."""
    storage = ctx.storage
    total = 0
    for p in parts:
        p.records = b""
        try:
            files.validate_name(p.topic, "topic")
            t = storage.topic(p.topic)
        except FslogError:
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
        p.code, p.start, p.hw, p.records = ErrorCode.none, got.log_start, got.log_end, got.records
        if got.error is not None:
            ctx.log.error("serve: fetch %s/%d: %s", p.topic, p.index, got.error)
            if not got.records:
                p.code = ErrorCode.kafka_storage_error
        total += len(got.records)
    return total


def _small(parts: list[_Part], max_bytes: int) -> bool:
    return min(sum(p.max_bytes for p in parts), max_bytes) <= QUICK_READ


def _quick(ctx: RequestContext, parts: list[_Part], max_bytes: int) -> bool:
    """Read on the event loop, saving a hand-over to a worker thread and back? When at
    most ``QUICK_READ`` bytes may come, and only from the tail of each partition (a
    consumer that has caught up: what comes was just written, in the page cache)."""
    if not _small(parts, max_bytes):
        return False
    at_tail = ctx.storage.at_tail
    return all(at_tail(p.topic, p.index, p.offset) for p in parts)


def _response(ctx: RequestContext, request, parts: list[_Part]):
    cls = ctx.response_class()
    topic_cls = nested(cls, "FetchableTopicResponse")
    part_cls = nested(cls, "PartitionData")
    aborted = () if getattr(request, "isolation_level", 0) == 1 else None
    by_topic: dict[str, list] = {}
    order: list[str] = []
    for p in parts:
        if p.topic not in by_topic:
            by_topic[p.topic] = []
            order.append(p.topic)
        by_topic[p.topic].append(build(
            part_cls, partition_index=p.index, error_code=p.code, high_watermark=p.hw,
            last_stable_offset=p.hw, log_start_offset=p.start, aborted_transactions=aborted,
            preferred_read_replica=-1, records=p.records))
    return build(cls, throttle_time=_ZERO, error_code=ErrorCode.none, session_id=0,
                 responses=tuple(build(topic_cls, topic=name, partitions=tuple(by_topic[name]))
                                 for name in order))


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
    if _quick(ctx, parts, max_bytes):
        total = _read_all(ctx, parts, max_bytes)
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
            if woken and _small(parts, max_bytes):
                # just appended (in the page cache), at most 1 MiB: read on the loop
                got = _read_all(ctx, parts, max_bytes)
            else:
                got = await ctx.run(_read_all, ctx, parts, max_bytes)
            on_fetch(ctx.server.replicas, replica_id, parts)
            if got >= min_bytes or any(p.code != ErrorCode.none for p in parts):
                break
        return _response(ctx, request, parts)

    return Deferred(long_poll())
