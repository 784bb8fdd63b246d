"""ListOffsets (key 2), v1-7: the offset for a time. -1 (latest): the log-end offset;
-2 (earliest): the log start offset; -3 (v7, max timestamp): the record with the
greatest timestamp; any other: the first record whose timestamp is at least that
(offset and timestamp -1 when there is none). Leader epoch 0.
"""

from __future__ import annotations

import datetime

from kio.schema.errors import ErrorCode

from ..errors import FslogError
from .handlers import RequestContext, handles
from .metadata import name_error
from .protocol import build, nested

_ZERO = datetime.timedelta(0)
LATEST, EARLIEST, MAX_TIMESTAMP = -1, -2, -3


def _lookup(ctx: RequestContext, topic: str, index: int, ts: int) -> tuple[ErrorCode, int, int]:
    bad = name_error(topic)
    if bad is not None:
        return bad, -1, -1
    t = ctx.storage.topic(topic)
    if t is None or not 0 <= index < t.partition_count:
        return ErrorCode.unknown_topic_or_partition, -1, -1
    try:
        if ts == LATEST:
            return ErrorCode.none, -1, ctx.storage.offsets(topic, index)[1]
        if ts == EARLIEST:
            return ErrorCode.none, -1, ctx.storage.offsets(topic, index)[0]
        if ts == MAX_TIMESTAMP:
            mts, off = ctx.storage.max_timestamp(topic, index)
            return ErrorCode.none, mts, off
        off, found = ctx.storage.offset_for_time(topic, index, ts)
        return ErrorCode.none, found, off
    except (FslogError, OSError) as e:
        ctx.log.error("serve: list offsets %s/%d: %s", topic, index, e)
        return ErrorCode.kafka_storage_error, -1, -1


def _all(ctx, request):
    return [(t.name, [(p.partition_index, _lookup(ctx, t.name, p.partition_index, p.timestamp))
                      for p in t.partitions]) for t in request.topics]


@handles(2)
async def list_offsets(ctx: RequestContext, request):
    cls = ctx.response_class()
    topic_cls = nested(cls, "ListOffsetsTopicResponse")
    part_cls = nested(cls, "ListOffsetsPartitionResponse")
    found = await ctx.run(_all, ctx, request)
    return build(cls, throttle_time=_ZERO, topics=tuple(
        build(topic_cls, name=name, partitions=tuple(
            build(part_cls, partition_index=i, error_code=code, timestamp=ts, offset=off,
                  leader_epoch=0 if code == ErrorCode.none else -1)
            for i, (code, ts, off) in parts))
        for name, parts in found))
