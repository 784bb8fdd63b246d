"""Group APIs: FindCoordinator (10), JoinGroup (11), Heartbeat (12), LeaveGroup (13),
SyncGroup (14), OffsetCommit (8), OffsetFetch (9), and for admin clients DescribeGroups
(15), ListGroups (16), DeleteGroups (42).

Each handler validates, asks the coordinator (``coordinator.py``: the state machine),
the offset files (``group_offsets.py``) or the admin view of groups (``group_admin.py``),
and fills the response of the version the client sent. JoinGroup and
SyncGroup answer through ``Deferred`` when they must wait for other members, so the
connection goes on meanwhile. Event loop thread only.
"""

from __future__ import annotations

import datetime

from kio.schema.errors import ErrorCode

from . import group_admin
from .coordinator import JoinResult, SyncResult, coordinator_of, valid_group_id
from .handlers import Deferred, RequestContext, handles
from .protocol import build, nested

_ZERO = datetime.timedelta(0)
_NO_OPERATIONS = -2147483648


def _ms(td) -> int:
    if td is None:
        return -1
    if isinstance(td, datetime.timedelta):
        return int(td.total_seconds() * 1000)
    return int(td)


def _client_host(ctx: RequestContext) -> str:
    peer = ctx.connection.peer
    return "/" + peer.rsplit(":", 1)[0] if ":" in peer else peer


def _bad_group(ctx: RequestContext, api: str, group_id) -> bool:
    if valid_group_id(group_id):
        return False
    ctx.log.warning("serve: %s: group id %r refused (INVALID_GROUP_ID): fslog keeps groups as "
                    "directories, so their names follow topic names' rules: 1-249 of "
                    "[A-Za-z0-9._-], not '.' or '..'", api, group_id)
    return True


# ------------------------------------------------------------ FindCoordinator
@handles(10)
async def find_coordinator(ctx: RequestContext, request):
    cls = ctx.response_class()
    node = ctx.server.config.node_id
    host, port = ctx.server.advertised
    if ctx.api_version >= 4:
        ccls = nested(cls, "Coordinator")
        return build(cls, throttle_time=_ZERO, coordinators=tuple(
            build(ccls, key=k, node_id=node, host=host, port=port, error_code=ErrorCode.none,
                  error_message=None) for k in request.coordinator_keys))
    return build(cls, throttle_time=_ZERO, error_code=ErrorCode.none, error_message=None,
                 node_id=node, host=host, port=port)


# ------------------------------------------------------------ JoinGroup
@handles(11)
async def join_group(ctx: RequestContext, request):
    cls = ctx.response_class()
    member_cls = nested(cls, "JoinGroupResponseMember")
    v = ctx.api_version

    def respond(r: JoinResult):
        return build(cls, throttle_time=_ZERO, error_code=r.error, generation_id=r.generation,
                     protocol_type=r.protocol_type,
                     protocol_name=r.protocol_name if (r.protocol_name is not None or v >= 7)
                     else "",
                     leader=r.leader, member_id=r.member_id,
                     members=tuple(build(member_cls, member_id=mid, group_instance_id=iid,
                                         metadata=meta) for mid, iid, meta in r.members))

    if _bad_group(ctx, "JoinGroup", request.group_id):
        return respond(JoinResult(ErrorCode.invalid_group_id, request.member_id))
    coord = coordinator_of(ctx.server)
    g = coord.group(request.group_id)
    err = await coord.ensure_claimed(g)
    if err != ErrorCode.none:
        return respond(JoinResult(err, request.member_id))
    protocols = [(p.name, bytes(p.metadata)) for p in request.protocols]
    got = coord.join(g, request.member_id, getattr(request, "group_instance_id", None),
                     ctx.client_id or "", _client_host(ctx), _ms(request.session_timeout),
                     _ms(getattr(request, "rebalance_timeout", None)), request.protocol_type,
                     protocols, v)
    coord._release_if_idle(g)  # a refused first join leaves nothing held
    if isinstance(got, JoinResult):
        return respond(got)

    async def later():
        return respond(await got)
    return Deferred(later())


# ------------------------------------------------------------ SyncGroup
@handles(14)
async def sync_group(ctx: RequestContext, request):
    cls = ctx.response_class()

    def respond(r: SyncResult):
        return build(cls, throttle_time=_ZERO, error_code=r.error, assignment=r.assignment,
                     protocol_type=r.protocol_type, protocol_name=r.protocol_name)

    if _bad_group(ctx, "SyncGroup", request.group_id):
        return respond(SyncResult(ErrorCode.invalid_group_id))
    coord = coordinator_of(ctx.server)
    assignments = {a.member_id: bytes(a.assignment) for a in request.assignments}
    got = coord.sync(coord.groups.get(request.group_id), request.generation_id,
                     request.member_id, getattr(request, "protocol_type", None),
                     getattr(request, "protocol_name", None), assignments)
    if isinstance(got, SyncResult):
        return respond(got)

    async def later():
        return respond(await got)
    return Deferred(later())


# ------------------------------------------------------------ Heartbeat, LeaveGroup
@handles(12)
async def heartbeat(ctx: RequestContext, request):
    coord = coordinator_of(ctx.server)
    code = coord.heartbeat(coord.groups.get(request.group_id), request.generation_id,
                           request.member_id)
    return build(ctx.response_class(), throttle_time=_ZERO, error_code=code)


@handles(13)
async def leave_group(ctx: RequestContext, request):
    cls = ctx.response_class()
    coord = coordinator_of(ctx.server)
    g = coord.groups.get(request.group_id)
    if ctx.api_version < 3:
        (code,) = coord.leave(g, [request.member_id])
        return build(cls, throttle_time=_ZERO, error_code=code)
    mcls = nested(cls, "MemberResponse")
    codes = coord.leave(g, [m.member_id for m in request.members])
    return build(cls, throttle_time=_ZERO, error_code=ErrorCode.none, members=tuple(
        build(mcls, member_id=m.member_id, group_instance_id=m.group_instance_id, error_code=c)
        for m, c in zip(request.members, codes)))


# ------------------------------------------------------------ OffsetCommit, OffsetFetch
@handles(8)
async def offset_commit(ctx: RequestContext, request):
    cls = ctx.response_class()
    tcls = nested(cls, "OffsetCommitResponseTopic")
    pcls = nested(cls, "OffsetCommitResponsePartition")
    wanted = [(t.name, p.partition_index, p.committed_offset)
              for t in request.topics for p in t.partitions]

    def respond(codes):
        out, i = [], 0
        for t in request.topics:
            parts = []
            for p in t.partitions:
                parts.append(build(pcls, partition_index=p.partition_index, error_code=codes[i]))
                i += 1
            out.append(build(tcls, name=t.name, partitions=tuple(parts)))
        return build(cls, throttle_time=_ZERO, topics=tuple(out))

    if _bad_group(ctx, "OffsetCommit", request.group_id):
        return respond([ErrorCode.invalid_group_id] * len(wanted))
    coord = coordinator_of(ctx.server)
    check = coord.commit_check(coord.groups.get(request.group_id),
                               request.generation_id_or_member_epoch, request.member_id)
    if check is not None and check != ErrorCode.none:
        return respond([check] * len(wanted))
    codes = await ctx.run(coord.offsets.write, request.group_id, wanted, request.member_id,
                          check == ErrorCode.none)
    return respond(codes)


async def _fetch_group(ctx: RequestContext, coord, group_id, topics):
    """(group error, [(topic, [(partition, offset, error)])])"""
    if _bad_group(ctx, "OffsetFetch", group_id):
        return ErrorCode.invalid_group_id, [(t, [(p, -1, ErrorCode.invalid_group_id) for p in ps])
                                            for t, ps in (topics or [])]
    return ErrorCode.none, await ctx.run(coord.offsets.read, group_id, topics)


@handles(9)
async def offset_fetch(ctx: RequestContext, request):
    cls = ctx.response_class()
    coord = coordinator_of(ctx.server)
    v = ctx.api_version
    if v >= 8:
        gcls = nested(cls, "OffsetFetchResponseGroup")
        tcls = nested(cls, "OffsetFetchResponseTopics")
        pcls = nested(cls, "OffsetFetchResponsePartitions")
        groups = []
        for g in request.groups:
            topics = None if g.topics is None else [(t.name, list(t.partition_indexes))
                                                    for t in g.topics]
            err, rows = await _fetch_group(ctx, coord, g.group_id, topics)
            groups.append(build(gcls, group_id=g.group_id, error_code=err,
                                topics=_offset_rows(tcls, pcls, rows)))
        return build(cls, throttle_time=_ZERO, groups=tuple(groups))
    tcls = nested(cls, "OffsetFetchResponseTopic")
    pcls = nested(cls, "OffsetFetchResponsePartition")
    topics = None if request.topics is None else [(t.name, list(t.partition_indexes))
                                                  for t in request.topics]
    err, rows = await _fetch_group(ctx, coord, request.group_id, topics)
    return build(cls, throttle_time=_ZERO, error_code=err, topics=_offset_rows(tcls, pcls, rows))


def _offset_rows(tcls, pcls, rows):
    return tuple(build(tcls, name=t, partitions=tuple(
        build(pcls, partition_index=p, committed_offset=o, committed_leader_epoch=-1,
              metadata="", error_code=e) for p, o, e in parts)) for t, parts in rows)


# ------------------------------------------------------------ admin: list, describe, delete
@handles(16)
async def list_groups(ctx: RequestContext, request):
    cls = ctx.response_class()
    lcls = nested(cls, "ListedGroup")
    coord = coordinator_of(ctx.server)
    rows = group_admin.list_all(coord, await ctx.run(group_admin.list_files, coord.root))
    states = set(getattr(request, "states_filter", None) or ())
    return build(cls, throttle_time=_ZERO, error_code=ErrorCode.none, groups=tuple(
        build(lcls, group_id=g, protocol_type=pt, group_state=st)
        for g, pt, st in rows if not states or st in states))


@handles(15)
async def describe_groups(ctx: RequestContext, request):
    cls = ctx.response_class()
    gcls = nested(cls, "DescribedGroup")
    mcls = nested(cls, "DescribedGroupMember")
    coord = coordinator_of(ctx.server)
    out = []
    for group_id in request.groups:
        if not valid_group_id(group_id):
            out.append(build(gcls, error_code=ErrorCode.invalid_group_id, group_id=group_id,
                             group_state="Dead", protocol_type="", protocol_data="", members=(),
                             authorized_operations=_NO_OPERATIONS))
            continue
        d = group_admin.describe(coord, group_id) or \
            await ctx.run(group_admin.describe_files, coord.root, group_id)
        members = tuple(build(mcls, member_id=mid, group_instance_id=iid, client_id=cid,
                              client_host=host, member_metadata=meta, member_assignment=asg)
                        for mid, iid, cid, host, meta, asg in d["members"])
        out.append(build(gcls, error_code=ErrorCode.none, group_id=group_id,
                         group_state=d["state"], protocol_type=d["protocol_type"],
                         protocol_data=d["protocol"], members=members,
                         authorized_operations=_NO_OPERATIONS))
    return build(cls, throttle_time=_ZERO, groups=tuple(out))


@handles(42)
async def delete_groups(ctx: RequestContext, request):
    cls = ctx.response_class()
    rcls = nested(cls, "DeletableGroupResult")
    coord = coordinator_of(ctx.server)
    results = []
    for group_id in request.groups_names:
        code = group_admin.delete_check(coord, group_id)
        if code is None:
            code = await ctx.run(group_admin.delete_files, coord, group_id)
            if code == ErrorCode.none:
                group_admin.forget(coord, group_id)
        results.append(build(rcls, group_id=group_id, error_code=code))
    return build(cls, throttle_time=_ZERO, results=tuple(results))
