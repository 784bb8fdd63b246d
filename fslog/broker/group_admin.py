"""Groups as admin clients see them: ListGroups, DescribeGroups, DeleteGroups.

A root's groups are both the ones serve coordinates (network members, in the
``Coordinator``'s memory) and the ones on disk (``groups/registry.py``: CLI members,
committed offsets). Admin clients see them together: a group with network members as the
coordinator knows it, any other as its files say (live ``fslog consume`` members:
Stable; none: Empty). DeleteGroups removes the files of a group with no member of
either kind (NON_EMPTY_GROUP otherwise), as ``fslog group delete`` does.

Functions named ``*_files`` block (file I/O: worker threads); the others read the
coordinator's state and run on the event loop.
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode

from ..errors import FslogError
from ..groups.registry import Registry, list_groups
from ..groups.served import served_lock_path
from ..storage.locks import is_locked_by_someone
from .consumer_protocol import encode_assignment, encode_subscription
from .coordinator import DEAD, EMPTY, STABLE, Coordinator, valid_group_id


def _file_group_state(root: str, name: str) -> tuple[str, str]:
    try:
        live = Registry(root, name, create=False).live_members()
    except (FslogError, OSError):
        return ("consumer", DEAD)
    return ("consumer", STABLE if live else EMPTY)


def list_files(root: str) -> dict[str, tuple[str, str]]:
    """Blocking: group id -> (protocol type, state) of every group on disk."""
    return {name: _file_group_state(root, name) for name in list_groups(root)}


def list_all(coord: Coordinator, on_disk: dict[str, tuple[str, str]]
             ) -> list[tuple[str, str, str]]:
    """``(group id, protocol type, state)`` of every group, network and CLI."""
    out = dict(on_disk)
    for g in coord.groups.values():
        if g.members or g.pending:
            out[g.group_id] = (g.protocol_type or "consumer", g.state)
    return [(k, *v) for k, v in sorted(out.items())]


def describe(coord: Coordinator, group_id: str) -> dict | None:
    """A group of network members as DescribeGroups shows it; None if it has none."""
    g = coord.groups.get(group_id)
    if g is None or not (g.members or g.pending):
        return None
    members = [(m.member_id, m.instance_id, m.client_id, m.client_host,
                m.metadata(g.protocol_name) if g.protocol_name else b"",
                m.assignment if g.state == STABLE else b"")
               for m in g.members.values()]
    return {"state": g.state, "protocol_type": g.protocol_type or "",
            "protocol": g.protocol_name or "", "members": members}


def describe_files(root: str, group_id: str) -> dict:
    """Blocking: a group of CLI members (or none) as DescribeGroups shows it: the
    members' topics and partitions in the consumer protocol's encoding."""
    try:
        live = Registry(root, group_id, create=False).live_members()
    except (FslogError, OSError):
        return {"state": DEAD, "protocol_type": "", "protocol": "", "members": []}
    members = [(m["member_id"], None, "fslog consume", str(m.get("host") or ""),
                encode_subscription(list(m.get("topics", []))),
                encode_assignment([tuple(tp) for tp in m.get("assigned", [])]))
               for m in sorted(live, key=lambda m: m["member_id"])]
    return {"state": STABLE if live else EMPTY, "protocol_type": "consumer",
            "protocol": "fslog" if live else "", "members": members}


def delete_check(coord: Coordinator, group_id: str) -> ErrorCode | None:
    """The error that refuses deleting ``group_id`` at once (an invalid id, network
    members), else None: its files are looked at next (``delete_files``)."""
    if not valid_group_id(group_id):
        return ErrorCode.invalid_group_id
    g = coord.groups.get(group_id)
    if g is not None and (g.members or g.pending or (g.claim is not None and g.claim.held)):
        return ErrorCode.non_empty_group
    return None


def delete_files(coord: Coordinator, group_id: str) -> ErrorCode:
    """Blocking: DeleteGroups of one group that has no network members."""
    from ..groups.admin import delete_group
    try:
        reg = Registry(coord.root, group_id, create=False)
    except FslogError:
        return ErrorCode.group_id_not_found
    if reg.live_members() or is_locked_by_someone(served_lock_path(reg)):
        return ErrorCode.non_empty_group
    try:
        delete_group(coord.server.log, group_id)
    except FslogError as e:
        coord.logger.warning("serve: DeleteGroups %r: %s", group_id, e)
        return ErrorCode.non_empty_group
    coord.logger.info("serve: group %r deleted (DeleteGroups)", group_id)
    return ErrorCode.none


def forget(coord: Coordinator, group_id: str) -> None:
    """Drop a deleted group's (memberless) state from the coordinator."""
    g = coord.groups.get(group_id)
    if g is not None and not (g.members or g.pending):
        del coord.groups[group_id]
