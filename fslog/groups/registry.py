"""The group registry: ZooKeeper's role, played by one small lease file per group.

Layout::

    ROOT/groups/G/
      .lock                    flock: serializes changes of registry.json
      registry.json            {"group", "generation", "members": {member id: {...}}}
      members/<member id>      flock held by the member's process for its whole life
      owners/<topic>-<p>.lock  flock held by the member reading that partition
      offsets/<topic>/<p>      committed offset of a partition: {"offset", "member", ...}

``registry.json`` is only changed under ``.lock`` and always written atomically (temp file,
fsync, rename), so a reader — or a member killed mid-write — never sees half a file; the
temp files such a member leaves are removed by the next member that starts here (and by
the next write in their directory). None of these directories, nor ``ROOT/groups``, may
be a symbolic link: each is checked before anything is created or written through it.
A committed-offset file that cannot be read raises UnreadableOffsetError (never taken
for "no offset"); ``fslog group reset`` replaces it.
A member record holds its id, host, pid, start time, last heartbeat, topics and assigned
partitions. A member is dead when nobody holds its ``members/<id>`` lock (its process is
gone: the kernel dropped the lock) or when its heartbeat is older than its session timeout
(a hung process). Every change of members bumps the generation and recomputes the
assignment (``assignor.py``) — every member runs the same code under the same lock.

Thread-safe; any number of processes.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading

from ..clock import now_ms
from ..errors import FslogError, UnreadableOffsetError
from ..storage import files
from ..storage.locks import BlockingLock, ProcessLock, is_locked_by_someone  # noqa: F401 (re-exported)

REGISTRY_FILE = "registry.json"


def group_dir(root: str, group: str) -> str:
    return os.path.join(files.groups_dir(root), files.validate_name(group, "group"))


class Registry:
    def __init__(self, root: str, group: str, create: bool = True):
        self.root = root
        self.group = group
        self.path = group_dir(root, group)
        subdirs = [os.path.join(self.path, sub) for sub in ("members", "owners", "offsets")]
        if create:
            files.makedirs(root)
            # each level is checked before anything is created in or through it
            for d in subdirs:
                files.ensure_dir(d, root)
        else:
            for d in (files.groups_dir(root), self.path):
                if os.path.islink(d):
                    files.check_real_dir(d, root)  # refuses it
            if not os.path.isdir(self.path):
                raise FslogError(f"group {group!r} does not exist in {root} (see 'fslog group list')")
            for d in subdirs:
                if os.path.lexists(d):
                    files.check_real_dir(d, root)
        files.check_real_dir(self.path, root)
        self.file = os.path.join(self.path, REGISTRY_FILE)
        self._flock = BlockingLock(os.path.join(self.path, ".lock"))
        self._tlock = threading.RLock()
        if create:  # a member starting: clear what members killed mid-write left behind
            self.remove_stale_temp_files()

    def remove_stale_temp_files(self) -> None:
        """Remove the temp files of atomic writes whose writers were killed (kill -9 between
        write and rename) from the group directory and its offset directories. Later
        writes clear their own directory as they go (``files.write_atomic``)."""
        files.remove_stale_temp_files(self.path)
        base = os.path.join(self.path, "offsets")
        try:
            topics = os.listdir(base)
        except OSError:
            return
        for name in topics:
            d = os.path.join(base, name)
            if not os.path.islink(d) and os.path.isdir(d):
                files.remove_stale_temp_files(d)

    # ------------------------------------------------------------ reading
    def read(self) -> dict:
        try:
            fd = os.open(self.file, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                state = json.loads(f.read())
            if not isinstance(state, dict) or not isinstance(state.get("members"), dict):
                raise ValueError("not a registry")
            return state
        except FileNotFoundError:
            return {"group": self.group, "generation": 0, "members": {}}
        except ValueError:
            # Never written torn (atomic rename), but a hand-edited or damaged file must not
            # wedge the group: start afresh; members re-register on their next heartbeat.
            return {"group": self.group, "generation": 0, "members": {}, "damaged": True}

    def stamp(self) -> tuple | None:
        """Cheap change detector: (inode, mtime, size) of registry.json."""
        try:
            st = os.stat(self.file)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def member_lock_path(self, member_id: str) -> str:
        return os.path.join(self.path, "members", member_id)

    def owner_lock_path(self, topic: str, partition: int) -> str:
        return os.path.join(self.path, "owners", f"{topic}-{partition}.lock")

    def is_alive(self, member: dict, at_ms: int | None = None) -> bool:
        at_ms = now_ms() if at_ms is None else at_ms
        if not is_locked_by_someone(self.member_lock_path(member["member_id"])):
            return False
        return at_ms - member.get("last_heartbeat", 0) <= member.get("session_timeout_ms", 10000)

    def live_members(self) -> list[dict]:
        state = self.read()
        t = now_ms()
        return [m for m in state["members"].values() if self.is_alive(m, t)]

    # ------------------------------------------------------------ changing
    def update(self, change) -> dict:
        """Apply ``change(state) -> bool`` under the group lock; write if it returned True."""
        with self._tlock, self._flock:
            state = self.read()
            state.pop("damaged", None)
            if change(state):
                state["updated_at"] = now_ms()
                data = json.dumps(state, indent=1, sort_keys=True).encode() + b"\n"
                files.write_atomic(self.file, data)
            return state

    # ------------------------------------------------------------ committed offsets
    def _offset_path(self, topic: str, partition: int) -> str:
        return os.path.join(self.path, "offsets", files.validate_name(topic), str(int(partition)))

    def reset_hint(self, topic: str, partition: int) -> str:
        """The command that replaces a partition's committed offset."""
        return (f"'fslog group reset {self.group} --topic {topic} --partition {partition} "
                f"--to-offset N --execute' (N: the next offset to read; or --to-earliest, "
                f"--to-latest)")

    def committed(self, topic: str, partition: int) -> int | None:
        """The committed offset, None if there is none; UnreadableOffsetError if its file
        is damaged: never guessed, so a group never silently starts again elsewhere."""
        path = self._offset_path(topic, partition)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                offset = json.loads(f.read())["offset"]
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise ValueError("not an offset")
            return offset
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.EISDIR:
                raise UnreadableOffsetError(
                    f"{path}: the committed offset of group {self.group!r} for {topic}/"
                    f"{partition} is a directory, not a file; remove it (rm -r), then set the "
                    f"offset with {self.reset_hint(topic, partition)}", path, topic,
                    partition) from None
            if e.errno != errno.ELOOP:
                raise
            why = "is a symbolic link (fslog does not follow links under its root)"
        except (ValueError, KeyError, TypeError):
            why = "is unreadable (damaged)"
        raise UnreadableOffsetError(
            f"{path}: the committed offset of group {self.group!r} for {topic}/{partition} {why}; "
            f"replace it with {self.reset_hint(topic, partition)}", path, topic, partition)

    def commit(self, topic: str, partition: int, offset: int, member_id: str | None = None) -> None:
        path = self._offset_path(topic, partition)
        files.ensure_dir(os.path.dirname(path), self.root)
        doc = {"offset": int(offset), "member": member_id, "committed_at": now_ms()}
        files.write_atomic(path, json.dumps(doc).encode() + b"\n")

    def committed_all(self, unreadable: list | None = None) -> dict[tuple[str, int], int]:
        """Every committed offset. A damaged file raises UnreadableOffsetError, or, given a
        list ``unreadable``, is appended to it (as that error) and left out."""
        out: dict[tuple[str, int], int] = {}
        base = os.path.join(self.path, "offsets")
        if not os.path.isdir(base):
            return out
        for topic in sorted(os.listdir(base)):
            tdir = os.path.join(base, topic)
            if not os.path.isdir(tdir):
                continue
            for name in os.listdir(tdir):
                if name.isdigit():
                    try:
                        c = self.committed(topic, int(name))
                    except UnreadableOffsetError as e:
                        if unreadable is None:
                            raise
                        unreadable.append(e)
                        continue
                    if c is not None:
                        out[(topic, int(name))] = c
        return out


def new_member_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


def list_groups(root: str) -> list[str]:
    d = files.groups_dir(root)
    if os.path.islink(d):
        files.check_real_dir(d, root)  # refuses it
    if not os.path.isdir(d):
        return []
    out = []
    for name in sorted(os.listdir(d)):
        try:
            files.validate_name(name, "group")
        except FslogError:
            continue
        if os.path.isdir(os.path.join(d, name)):
            out.append(name)
    return out
