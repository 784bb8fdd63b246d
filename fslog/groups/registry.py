"""The group registry: ZooKeeper's role, played by one small lease file per group.

Layout::

    ROOT/groups/G/
      registry.<version>.json  the registry, one file per version (20 digits); the newest
                               is the state: {"group", "generation", "version", "members":
                               {member id: {...}}}; the newest 64 are kept
      registry.json            a copy of the newest version, for people and tools
      members/<member id>      flock held by the member's process for its whole life
      owners/<topic>-<p>.lock  flock held by the member reading that partition
      offsets/<topic>/<p>      committed offset of a partition: {"offset", "topic_id",
                               "member", "committed_at"}; an offset whose topic_id is not the
                               topic's (deleted and re-created since) is not used

No lock is held to change the registry (``Registry.update``): a change is computed from
the newest version N and written by compare-and-swap, a hard link to the name of version
N+1, which fails if another process wrote N+1 first (then the change is computed again).
A process stopped (Ctrl-Z, SIGSTOP) or killed at any moment therefore never stalls the
others: nothing they wait for is held. Every version is fsynced before it is linked, so a
reader — or a member killed mid-write — never sees half a file; the temp files such a
member leaves are removed by the next member that starts here (and by the next write in
their directory). ``registry.json`` is rewritten after each version and may lag behind
for a moment (by a writer stopped between the two); fslog itself reads the versions.
None of these directories, nor ``ROOT/groups``, may
be a symbolic link: each is checked before anything is created or written through it.
A committed-offset file that cannot be read raises UnreadableOffsetError (never taken
for "no offset"); ``fslog group reset`` replaces it.
A member record holds its id, host, pid, start time, last heartbeat, topics and assigned
partitions. A member is dead when nobody holds its ``members/<id>`` lock (its process is
gone: the kernel dropped the lock) or when its heartbeat is older than its session timeout
(a hung process). Every change of members bumps the generation and recomputes the
assignment (``assignor.py``) — every member runs the same code on the same version.

Thread-safe; any number of processes.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import threading

from ..clock import now_ms
from ..errors import FslogError, GroupDeletedError, UnreadableOffsetError, UnsafePathError
from ..storage import files
from ..storage.locks import BlockingLock, ProcessLock, is_locked_by_someone  # noqa: F401 (re-exported)

REGISTRY_FILE = "registry.json"
_VERSION_RE = re.compile(r"registry\.(\d{20})\.json\Z")
KEEP_VERSIONS = 64  # registry versions kept on disk (see Registry.update)
_MAX_REGISTRY_BYTES = 16 << 20
TMP_SEP = files.TMP_INFIX


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
    def versions(self) -> list[int]:
        """The registry versions on disk, oldest first (the newest is the state)."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_VERSION_RE.match, names) if m)

    def _version_path(self, version: int) -> str:
        return os.path.join(self.path, f"registry.{version:020d}.json")

    def _read_file(self, path: str) -> dict:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafePathError(f"{path} is a symbolic link: fslog does not follow links "
                                      f"under its root; remove it") from None
            raise
        with os.fdopen(fd, "rb") as f:
            data = f.read(_MAX_REGISTRY_BYTES)
        try:
            state = json.loads(data)
            if not isinstance(state, dict) or not isinstance(state.get("members"), dict) \
                    or not all(isinstance(m, dict) for m in state["members"].values()):
                raise ValueError("not a registry")
            return state
        except (ValueError, RecursionError):
            # Never written torn (atomic link), but a hand-edited or damaged file must not
            # wedge the group: start afresh; members re-register on their next heartbeat.
            return {"group": self.group, "generation": 0, "members": {}, "damaged": True}

    def read_versioned(self) -> tuple[int, dict]:
        """(version, state): the newest registry version. A group written by an fslog that
        kept only ``registry.json`` reads as version 0 with that file's state."""
        for _ in range(1000):
            vs = self.versions()
            try:
                if not vs:
                    return 0, self._read_file(self.file)
                return vs[-1], self._read_file(self._version_path(vs[-1]))
            except FileNotFoundError:
                if not vs:
                    return 0, {"group": self.group, "generation": 0, "members": {}}
                # removed by a writer's clean-up: a newer version exists, look again
        raise FslogError(f"{self.path}: the registry keeps changing under this reader; try again")

    def read(self) -> dict:
        return self.read_versioned()[1]

    def stamp(self) -> int | None:
        """Cheap change detector: the newest registry version."""
        vs = self.versions()
        return vs[-1] if vs else None

    def member_lock_path(self, member_id: str) -> str:
        return os.path.join(self.path, "members", member_id)

    def owner_lock_path(self, topic: str, partition: int) -> str:
        return os.path.join(self.path, "owners", files.owner_lock_name(topic, partition))

    def is_alive(self, member: dict, at_ms: int | None = None) -> bool:
        at_ms = now_ms() if at_ms is None else at_ms
        if not is_locked_by_someone(self.member_lock_path(member["member_id"])):
            return False
        return at_ms - member.get("last_heartbeat", 0) <= member.get("session_timeout_ms", 10000)

    def live_members(self) -> list[dict]:
        state = self.read()
        t = now_ms()
        return [m for m in state["members"].values() if self.is_alive(m, t)]

    def held_member_locks(self) -> list[str]:
        """Member ids whose ``members/`` lock a process still holds: live members, and
        processes evicted as hung (stopped) that will come back when they resume."""
        d = os.path.join(self.path, "members")
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return []
        return [n for n in names if TMP_SEP not in n and is_locked_by_someone(os.path.join(d, n))]

    # ------------------------------------------------------------ changing
    def check_exists(self) -> None:
        """Raise GroupDeletedError if the group's directory is gone (fslog group delete)."""
        if not os.path.isdir(self.path):
            raise GroupDeletedError(
                f"group {self.group!r} was deleted ('fslog group delete') while this member "
                f"was running; nothing more is committed: run it again to start a new group "
                f"of that name")

    def update(self, change) -> dict:
        """Apply ``change(state) -> bool`` and write the result as the next version, if it
        returned True; return the state.

        Compare-and-swap, no lock: the new state is written to a temp file, fsynced, and
        hard-linked to the name of version N+1, where N is the version it was computed
        from. link(2) fails if that name exists: another process wrote N+1 first, and the
        change is computed again on top of its state. A process stopped (SIGSTOP) or killed
        at any point holds nothing that others wait for; when it resumes, its link of a
        version that others have long passed is found out (see ``_link_version``) and
        redone on the newest state. Each lost race means another process got a change in,
        so the loop always makes progress; it is bounded all the same.
        """
        with self._tlock:
            for _ in range(10000):
                self.check_exists()
                version, state = self.read_versioned()
                state.pop("damaged", None)
                if not change(state):
                    return state
                state["version"] = version + 1
                state["updated_at"] = now_ms()
                data = json.dumps(state, indent=1, sort_keys=True).encode() + b"\n"
                if self._link_version(version + 1, data):
                    return state
        raise FslogError(f"{self.path}: could not update the registry (10000 lost races); "
                         f"try again")

    def _link_version(self, version: int, data: bytes) -> bool:
        """Write ``data`` as registry version ``version`` if no process did first."""
        tmp = f"{self.file}{files.TMP_INFIX}{os.getpid()}"
        final = self._version_path(version)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, files.FILE_MODE)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, final)
            except FileExistsError:
                os.unlink(tmp)
                return False
            # A version that already had KEEP_VERSIONS successors was removed by their
            # clean-up; linking its name again (a process that was stopped since it read
            # the state) does not make it the newest: withdraw it and compute again.
            newest = self.versions()
            if newest and newest[-1] >= version + KEEP_VERSIONS:
                os.unlink(final)
                os.unlink(tmp)
                return False
            # registry.json: the same bytes, for people and tools (fslog reads versions)
            os.replace(tmp, self.file)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        files.fsync_dir(self.path)
        for old in newest:
            if old > version - KEEP_VERSIONS:
                break
            try:
                os.unlink(self._version_path(old))
            except FileNotFoundError:
                pass
        return True

    # ------------------------------------------------------------ committed offsets
    def _offset_path(self, topic: str, partition: int) -> str:
        return os.path.join(self.path, "offsets", files.validate_name(topic), str(int(partition)))

    def reset_hint(self, topic: str, partition: int) -> str:
        """The command that replaces a partition's committed offset."""
        return (f"'fslog group reset {self.group} --topic {topic} --partition {partition} "
                f"--to-offset N --execute' (N: the next offset to read; or --to-earliest, "
                f"--to-latest)")

    def committed(self, topic: str, partition: int, incarnation=None) -> int | None:
        """The committed offset, None if there is none; UnreadableOffsetError if its file
        is damaged: never guessed, so a group never silently starts again elsewhere.

        ``incarnation``: the ``Topic`` the offset is for. An offset committed for another
        topic of the same name (deleted and re-created since: another topic id) is not
        this topic's, and reads as None (see ``stale_committed``)."""
        doc = self.committed_doc(topic, partition)
        if doc is None or not belongs_to(doc, incarnation):
            return None
        return doc["offset"]

    def stale_committed(self, topic: str, partition: int, incarnation) -> int | None:
        """The offset committed for an earlier topic of this name, if that is what the
        file holds (a deleted and re-created topic); None otherwise."""
        doc = self.committed_doc(topic, partition)
        if doc is None or belongs_to(doc, incarnation):
            return None
        return doc["offset"]

    def committed_doc(self, topic: str, partition: int) -> dict | None:
        """The committed-offset file as stored ({"offset", "topic_id", ...}), checked."""
        path = self._offset_path(topic, partition)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                doc = json.loads(f.read(1 << 16))
            offset = doc["offset"]
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise ValueError("not an offset")
            return doc
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

    def commit(self, topic: str, partition: int, offset: int, member_id: str | None = None,
               incarnation=None) -> None:
        """Write the committed offset; ``incarnation`` (the ``Topic``) stamps it with the
        topic id, so that a re-created topic of the same name does not inherit it."""
        path = self._offset_path(topic, partition)
        self.check_exists()  # never make a deleted group's directories again
        files.ensure_dir(os.path.dirname(path), self.root)
        doc = {"offset": int(offset), "member": member_id, "committed_at": now_ms()}
        if incarnation is not None and incarnation.id is not None:
            doc["topic_id"] = incarnation.id
        files.write_atomic(path, json.dumps(doc).encode() + b"\n")

    def committed_all(self, unreadable: list | None = None) -> dict[tuple[str, int], int]:
        """Every committed offset (as stored, for whichever topic of the name). A damaged
        file raises UnreadableOffsetError, or, given a list ``unreadable``, is appended to
        it (as that error) and left out."""
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


def belongs_to(doc: dict, incarnation) -> bool:
    """Was the committed offset ``doc`` made for ``incarnation`` (a ``Topic``; None: any)?

    By topic id when both have one. An offset without one (written before topics had
    ids) belongs unless it was committed before the topic was created."""
    if incarnation is None:
        return True
    tid = doc.get("topic_id")
    if tid is not None:
        return tid == incarnation.id
    created, at = incarnation.created_at, doc.get("committed_at")
    return not (isinstance(created, int) and isinstance(at, int) and at < created)


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
