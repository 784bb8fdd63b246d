"""OffsetForLeaderEpoch (key 23), v2-4: where a leader epoch ended on this root's log
(``storage/leader_epoch.py``: the leader-epoch checkpoint, Kafka's semantics).

A follower that was once the leader asks, for its latest epoch, where that epoch ended
here, and truncates its log to that offset (``replication/follower.py``). For each
partition: the greatest epoch <= the one asked that this log knows, and its end offset
(the start of the next epoch, or the log-end offset for the latest); -1/-1 for an epoch
older than all of them. ``current_leader_epoch`` (fencing) is not checked: a root has one
leader, itself.
"""

from __future__ import annotations

import datetime

from kio.schema.errors import ErrorCode

from ..errors import FslogError
from ..storage import leader_epoch
from .handlers import RequestContext, handles
from .protocol import build, nested

_ZERO = datetime.timedelta(0)


def _lookup(ctx: RequestContext, topics):
    out = []
    for t in topics:
        try:
            topic = ctx.storage.topic(t.topic)
        except FslogError:
            topic = None
        rows = []
        for p in t.partitions:
            if topic is None or not 0 <= p.partition < topic.partition_count:
                rows.append((p.partition, ErrorCode.unknown_topic_or_partition, -1, -1))
                continue
            try:
                epoch, end = leader_epoch.end_offset_for(topic.partition(p.partition), p.leader_epoch)
                rows.append((p.partition, ErrorCode.none, epoch, end))
            except (FslogError, OSError) as e:
                ctx.log.warning("serve: OffsetForLeaderEpoch %s/%d: %s", t.topic, p.partition, e)
                rows.append((p.partition, ErrorCode.kafka_storage_error, -1, -1))
        out.append((t.topic, rows))
    return out


@handles(23)
async def offset_for_leader_epoch(ctx: RequestContext, request):
    cls = ctx.response_class()
    topic_cls = nested(cls, "OffsetForLeaderTopicResult")
    part_cls = nested(cls, "EpochEndOffset")
    found = await ctx.run(_lookup, ctx, request.topics)
    return build(cls, throttle_time=_ZERO, topics=tuple(
        build(topic_cls, topic=name, partitions=tuple(
            build(part_cls, error_code=code, partition=p, leader_epoch=epoch, end_offset=end)
            for p, code, epoch, end in rows))
        for name, rows in found))
