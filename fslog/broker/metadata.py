"""Metadata (key 3), v0-12: this server is the one broker, leader and only replica of
every partition; topics are created on first mention as Kafka's
``auto.create.topics.enable`` does (``--no-auto-create-topics`` turns it off) with the
CLI's default partition count. No topic ids (v10+ send the zero UUID).
"""

from __future__ import annotations

import datetime
import uuid

from kio.schema.errors import ErrorCode

from ..errors import FslogError, InvalidNameError, TopicExistsError
from ..storage import files
from .handlers import RequestContext, handles
from .protocol import build, nested

_ZERO = datetime.timedelta(0)
_NO_ID = uuid.UUID(int=0)


def name_error(name) -> ErrorCode | None:
    """INVALID_TOPIC_EXCEPTION for a name fslog (and Kafka) refuses, else None."""
    try:
        files.validate_name(name, "topic")
    except (InvalidNameError, TypeError):
        return ErrorCode.invalid_topic_exception
    return None


def ensure_topic(ctx: RequestContext, name: str, create: bool):
    """(Topic or None, error code); creates it when allowed (blocking: a worker thread)."""
    bad = name_error(name)
    if bad is not None:
        return None, bad
    t = ctx.storage.topic(name)
    if t is not None:
        return t, ErrorCode.none
    if not (create and ctx.server.config.auto_create_topics):
        return None, ErrorCode.unknown_topic_or_partition
    try:
        t = ctx.storage.create_topic(name, if_not_exists=True)
        ctx.log.info("serve: created topic %r with %d partition(s) (auto.create.topics.enable)",
                     name, t.partition_count)
        return t, ErrorCode.none
    except TopicExistsError:
        t = ctx.storage.topic(name)
        return t, ErrorCode.none if t is not None else ErrorCode.unknown_topic_or_partition
    except FslogError as e:
        ctx.log.warning("serve: cannot create topic %r: %s", name, e)
        return None, ErrorCode.unknown_server_error


def _describe(ctx: RequestContext, names, auto_create: bool):
    if names is None:
        names = ctx.storage.topic_names()
        auto_create = False
    out = []
    for name in names:
        t, code = ensure_topic(ctx, name, auto_create)
        out.append((name, t.partition_count if t is not None else 0, code))
    return out


@handles(3)
async def metadata(ctx: RequestContext, request):
    cls = ctx.response_class()
    topic_cls = nested(cls, "MetadataResponseTopic")
    part_cls = nested(cls, "MetadataResponsePartition")
    broker_cls = nested(cls, "MetadataResponseBroker")
    v = ctx.api_version
    names = None if request.topics is None else [t.name for t in request.topics]
    if v == 0 and not names:
        names = None  # v0: an empty list means every topic
    auto = getattr(request, "allow_auto_topic_creation", True)
    described = await ctx.run(_describe, ctx, names, auto)
    node = ctx.server.config.node_id
    host, port = ctx.server.advertised
    topics = []
    for name, count, code in described:
        parts = tuple(
            build(part_cls, error_code=ErrorCode.none, partition_index=i, leader_id=node,
                  leader_epoch=0, replica_nodes=(node,), isr_nodes=(node,),
                  offline_replicas=())
            for i in range(count))
        topics.append(build(topic_cls, error_code=code, name=name, topic_id=_NO_ID,
                            is_internal=False, partitions=parts))
    return build(cls, throttle_time=_ZERO,
                 brokers=(build(broker_cls, node_id=node, host=host, port=port, rack=None),),
                 cluster_id=ctx.server.cluster_id, controller_id=node, topics=tuple(topics),
                 cluster_authorized_operations=-2147483648)
