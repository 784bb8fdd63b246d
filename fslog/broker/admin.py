"""Admin APIs for topics: CreateTopics (19, v2-7), DeleteTopics (20, v1-6),
DescribeConfigs (32, v1-4) and IncrementalAlterConfigs (44, v0-1).

Topics are the same as ``fslog topic create/delete/alter``: config keys are fslog's
(Kafka's names, validated by ``config.py``; INVALID_CONFIG names the valid ones); a
replication factor other than 1 (or -1, the default) is INVALID_REPLICATION_FACTOR: one
root is one replica. Broker resources describe as empty. No topic ids.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, Callable, TypeVar

from kio.schema.errors import ErrorCode

from ..config import KEYS, parse_config
from ..errors import ConfigError, FslogError, TopicExistsError, UnknownTopicError
from ..log import MAX_PARTITIONS
from ..storage.topic import Topic
from .handlers import RequestContext, handles
from .metadata import name_error
from .protocol import build, nested

_ZERO = datetime.timedelta(0)
_NO_ID = uuid.UUID(int=0)
TOPIC, BROKER = 2, 4
SOURCE_TOPIC, SOURCE_DEFAULT = 1, 5
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def _config_entries(cls, t, keys=None):
    eff = t.config.effective()
    out = []
    for k in sorted(eff):
        if keys and k not in keys:
            continue
        v = eff[k]
        out.append(build(cls, name=k, value=str(v), read_only=False, is_default=k not in t.config.overrides,
                         config_source=SOURCE_TOPIC if k in t.config.overrides else SOURCE_DEFAULT,
                         is_sensitive=False, synonyms=(), config_type=0,
                         documentation=KEYS[k].doc))
    return tuple(out)


T = TypeVar("T")


def _attempt(other: ErrorCode, fn: Callable[..., T], *args: Any
             ) -> tuple[T | None, ErrorCode, str | None]:
    """Run one topic's part of a CreateTopics or DeleteTopics: (what ``fn`` returned,
    NONE, None), or (None, Kafka's error code, the one-line message) for what it raised
    (``other`` for any other FslogError or OSError)."""
    try:
        return fn(*args), ErrorCode.none, None
    except ConfigError as e:
        return None, ErrorCode.invalid_config, str(e)
    except TopicExistsError as e:
        return None, ErrorCode.topic_already_exists, str(e)
    except UnknownTopicError as e:
        return None, ErrorCode.unknown_topic_or_partition, str(e)
    except (FslogError, OSError) as e:
        return None, other, str(e)


def _create_one(ctx: RequestContext, ct, n: int, validate_only: bool) -> Topic | None:
    name = ct.name
    config = {c.name: c.value for c in ct.configs if c.value is not None}
    parse_config(config)
    if ctx.storage.topic(name) is not None:
        raise TopicExistsError(f"topic {name!r} already exists")
    if validate_only:
        return None
    t = ctx.storage.create_topic(name, n, config)
    ctx.log.info("serve: created topic %r with %d partition(s) (CreateTopics)", name, n)
    return t


def _create(ctx: RequestContext, request):
    results = []
    for ct in request.topics:
        name = ct.name
        t: Topic | None = None
        n = ct.num_partitions if ct.num_partitions != -1 else ctx.server.config.default_partitions
        err: ErrorCode
        msg: str | None
        if name_error(name) is not None:
            err, msg = ErrorCode.invalid_topic_exception, f"invalid topic name {name!r}"
        elif ct.replication_factor not in (-1, 1):
            err, msg = (ErrorCode.invalid_replication_factor,
                        "fslog serve is one replica: use replication factor 1 (or -1)")
        elif ct.assignments:
            err, msg = ErrorCode.invalid_request, "replica assignments are not supported"
        elif not 1 <= n <= MAX_PARTITIONS:
            err, msg = ErrorCode.invalid_partitions, f"use 1 to {MAX_PARTITIONS} partitions"
        else:
            t, err, msg = _attempt(ErrorCode.invalid_request, _create_one, ctx, ct, n,
                                   request.validate_only)
        results.append((name, err, msg, n if err == ErrorCode.none else -1, t))
    return results


@handles(19)
async def create_topics(ctx: RequestContext, request):
    cls = ctx.response_class()
    res_cls = nested(cls, "CreatableTopicResult")
    cfg_cls = nested(cls, "CreatableTopicConfigs") if hasattr(
        __import__(res_cls.__module__, fromlist=["x"]), "CreatableTopicConfigs") else None
    results = await ctx.run(_create, ctx, request)
    return build(cls, throttle_time=_ZERO, topics=tuple(
        build(res_cls, name=name, topic_id=_NO_ID, error_code=err, error_message=msg,
              topic_config_error_code=0, num_partitions=n,
              replication_factor=1 if err == ErrorCode.none else -1,
              configs=_config_entries(cfg_cls, t) if (t is not None and cfg_cls) else ())
        for name, err, msg, n, t in results))


def _delete_one(ctx: RequestContext, name: str) -> None:
    ctx.storage.delete_topic(name)
    ctx.server.producers.forget_topic(name)
    ctx.log.info("serve: deleted topic %r (DeleteTopics)", name)


def _delete(ctx: RequestContext, names) -> list[tuple[str, ErrorCode, str | None]]:
    out: list[tuple[str, ErrorCode, str | None]] = []
    for name in names:
        if name is None or name_error(name) is not None:
            out.append((name, ErrorCode.unknown_topic_or_partition, "give topics by name"))
            continue
        _, err, msg = _attempt(ErrorCode.unknown_server_error, _delete_one, ctx, name)
        out.append((name, err, msg))
    return out


@handles(20)
async def delete_topics(ctx: RequestContext, request):
    cls = ctx.response_class()
    res_cls = nested(cls, "DeletableTopicResult")
    names = (list(request.topic_names) if hasattr(request, "topic_names")
             else [t.name for t in request.topics])
    results = await ctx.run(_delete, ctx, names)
    return build(cls, throttle_time=_ZERO, responses=tuple(
        build(res_cls, name=n, topic_id=_NO_ID, error_code=e, error_message=m)
        for n, e, m in results))


def _describe(ctx: RequestContext, request, entry_cls):
    out: list[tuple[object, ErrorCode, str | None, tuple]] = []
    for r in request.resources:
        if r.resource_type == BROKER:
            out.append((r, ErrorCode.none, None, ()))
            continue
        if r.resource_type != TOPIC:
            out.append((r, ErrorCode.invalid_request, "only topic and broker resources", ()))
            continue
        t = _existing(ctx, r.resource_name)
        if t is None:
            out.append((r, ErrorCode.unknown_topic_or_partition,
                        f"topic {r.resource_name!r} does not exist", ()))
            continue
        keys = set(r.configuration_keys) if r.configuration_keys else None
        out.append((r, ErrorCode.none, None, _config_entries(entry_cls, t, keys)))
    return out


@handles(32)
async def describe_configs(ctx: RequestContext, request):
    cls = ctx.response_class()
    res_cls = nested(cls, "DescribeConfigsResult")
    entry_cls = nested(cls, "DescribeConfigsResourceResult")
    results = await ctx.run(_describe, ctx, request, entry_cls)
    return build(cls, throttle_time=_ZERO, results=tuple(
        build(res_cls, error_code=e, error_message=m, resource_type=r.resource_type,
              resource_name=r.resource_name, configs=entries)
        for r, e, m, entries in results))


def _alter_one(ctx: RequestContext, r, t: Topic, validate_only: bool) -> None:
    overrides = dict(t.config.overrides)
    for c in r.configs:
        if c.config_operation == SET:
            overrides[c.name] = c.value
        elif c.config_operation == DELETE:
            overrides.pop(c.name, None)
        else:
            raise ConfigError(f"{c.name}: APPEND and SUBTRACT apply to list configs; "
                              f"fslog has none")
    parse_config(overrides)
    if not validate_only:
        ctx.storage.set_config(r.resource_name, overrides)


def _existing(ctx: RequestContext, name) -> Topic | None:
    return ctx.storage.topic(name) if name_error(name) is None else None


def _alter(ctx: RequestContext, request) -> list[tuple[object, ErrorCode, str | None]]:
    out: list[tuple[object, ErrorCode, str | None]] = []
    for r in request.resources:
        if r.resource_type != TOPIC:
            out.append((r, ErrorCode.invalid_request, "only topic configs can be altered"))
            continue
        t = _existing(ctx, r.resource_name)
        if t is None:
            out.append((r, ErrorCode.unknown_topic_or_partition,
                        f"topic {r.resource_name!r} does not exist"))
            continue
        _, err, msg = _attempt(ErrorCode.invalid_request, _alter_one, ctx, r, t,
                               request.validate_only)
        out.append((r, err, msg))
    return out


@handles(44)
async def incremental_alter_configs(ctx: RequestContext, request):
    cls = ctx.response_class()
    res_cls = nested(cls, "AlterConfigsResourceResponse")
    results = await ctx.run(_alter, ctx, request)
    return build(cls, throttle_time=_ZERO, responses=tuple(
        build(res_cls, error_code=e, error_message=m, resource_type=r.resource_type,
              resource_name=r.resource_name) for r, e, m in results))
