"""Every on-disk name and path rule of fslog, in one place.

Layout under the root directory (the "broker")::

    ROOT/
      topics/
        orders/                       a topic
          topic.json                  partition count and config overrides
          orders-0/                   partition 0 (Kafka's "<topic>-<partition>" name)
            .lock                     the partition's writer lock (flock)
            .cleaner.lock             held while retention or compaction runs (flock)
            cleaner-checkpoint.json   compaction: where the not-yet-compacted part begins
            00000000000000000000.log  segment: RecordBatch v2 batches
            00000000000000000000.index      offset index (sparse)
            00000000000000000000.timeindex  time index (sparse)
            leader-epoch-checkpoint   leader epochs: epoch -> start offset (Kafka's format)
      groups/                         consumer groups (registry, committed offsets)
        G/mirror.json                 ``fslog mirror --group G``: the remote log-end offset
                                      per partition at its last commit (replication/mirror.py)
        G/mirror.lock                 held by the running ``fslog mirror`` of group G (flock)
      follower.json                   present while the root is a follower of another
                                      (``fslog replicate``): what it follows, what it copied
      replicate.lock                  held by the running ``fslog replicate`` (flock)
      serve/                          fslog serve (see storage/servers.py)
        server.lock                   flock held by the running server; holds its address and counters
        producer-ids                  the next block of idempotent-producer ids to hand out
        users.json                    SASL users: salted SCRAM credentials, mode 0600 (broker/users.py)
        users.lock                    flock held while ``fslog serve users`` changes users.json
      tmp/                            topics being created or deleted, groups being deleted

Segment files are named by their base offset, zero-padded to 20 digits so that ``ls``
sorts them numerically, exactly as Kafka names them.
"""

from __future__ import annotations

import os
import re
import stat

from ..errors import FslogError, InvalidNameError, UnsafePathError

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"
CLEANED_SUFFIX = ".cleaned"
CLEAN_MARKER_SUFFIX = ".swap.json"   # a compaction being swapped in: see cleaner.py
CLEANER_LOCK_FILE = ".cleaner.lock"  # one cleaner per partition at a time
CLEANER_CHECKPOINT_FILE = "cleaner-checkpoint.json"  # first dirty offset
CLEANER_ERROR_FILE = "cleaner-error.json"  # why the last background compaction failed
TOPICS_DIR = "topics"
GROUPS_DIR = "groups"
TMP_DIR = "tmp"
SERVE_DIR = "serve"
SERVER_LOCK_FILE = "server.lock"
PRODUCER_IDS_FILE = "producer-ids"
USERS_FILE = "users.json"  # fslog serve's SASL users (broker/users.py)
USERS_LOCK_FILE = "users.lock"
TMP_INFIX = ".tmp."  # write_atomic's temp files: NAME.tmp.<pid>
TOPIC_CONFIG_FILE = "topic.json"
LOCK_FILE = ".lock"
LEADER_EPOCH_FILE = "leader-epoch-checkpoint"  # see leader_epoch.py
FOLLOWER_FILE = "follower.json"     # ROOT/follower.json: this root follows another (replica.py)
REPLICATE_LOCK_FILE = "replicate.lock"  # ROOT/replicate.lock: held by the running follower
MIRROR_STATE_FILE = "mirror.json"   # ROOT/groups/G/mirror.json: a mirror's remote end offsets
MIRROR_LOCK_FILE = "mirror.lock"    # ROOT/groups/G/mirror.lock: one mirror per group

_NAME_RE = re.compile(r"[A-Za-z0-9._-]+\Z")
MAX_NAME_LENGTH = 249
_SEGMENT_RE = re.compile(r"(\d{20})\.log\Z")

# Files and directories are created with these modes (the umask still applies):
# never world-writable, even under a permissive umask.
DIR_MODE = 0o755
FILE_MODE = 0o644


def validate_name(name: str, kind: str = "topic") -> str:
    """Return ``name`` if it is a valid Kafka-style name, else raise InvalidNameError."""
    if not isinstance(name, str) or name == "":
        raise InvalidNameError(f"{kind} name is empty: use 1 to {MAX_NAME_LENGTH} characters from [A-Za-z0-9._-]")
    if name in (".", ".."):
        raise InvalidNameError(f"{kind} name {name!r} is not allowed: '.' and '..' are reserved")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"{kind} name is {len(name)} characters long: the limit is {MAX_NAME_LENGTH}")
    if not _NAME_RE.match(name):
        bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9._-]", c)})
        shown = ", ".join(repr(c) for c in bad[:5])
        raise InvalidNameError(
            f"{kind} name {name!r} contains {shown}: use only letters, digits, '.', '_' and '-'")
    return name


def segment_name(base_offset: int, suffix: str = LOG_SUFFIX) -> str:
    """``00000000000000000042.log`` for base offset 42."""
    return f"{base_offset:020d}{suffix}"


def parse_segment_name(filename: str) -> int | None:
    """Base offset of a ``.log`` file name, or None if the name is not a segment."""
    m = _SEGMENT_RE.match(filename)
    return int(m.group(1)) if m else None


def topics_dir(root: str) -> str:
    return os.path.join(root, TOPICS_DIR)


def groups_dir(root: str) -> str:
    return os.path.join(root, GROUPS_DIR)


def follower_file(root: str) -> str:
    """``ROOT/follower.json``: present while the root follows another (storage/replica.py)."""
    return os.path.join(root, FOLLOWER_FILE)


def mirror_state_path(group_dir: str) -> str:
    """``ROOT/groups/G/mirror.json`` of the group whose directory is ``group_dir``."""
    return os.path.join(group_dir, MIRROR_STATE_FILE)


def mirror_lock_path(group_dir: str) -> str:
    return os.path.join(group_dir, MIRROR_LOCK_FILE)


def serve_dir(root: str) -> str:
    return os.path.join(root, SERVE_DIR)


def topic_dir(root: str, topic: str) -> str:
    return os.path.join(topics_dir(root), validate_name(topic, "topic"))


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


MAX_FILE_NAME = 255  # bytes, on every common Linux file system


def fit_name(name: str, keep: str = "") -> str:
    """``name + keep`` if it fits in a file name; else ``name`` cut short, a hash of all of
    it and ``keep`` (e.g. a suffix). Names fslog derives from topic and group names (up to
    249 characters) go through here; '~' appears in no valid name, so a shortened name
    never equals the name derived from another topic or group."""
    if len((name + keep).encode()) <= MAX_FILE_NAME:
        return name + keep
    import hashlib  # (here: hashlib costs every start, and few names are this long)
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[:MAX_FILE_NAME - len(keep) - 18]}~{digest}{keep}"


def owner_lock_name(topic: str, partition: int) -> str:
    """``orders-3.lock``: the group's owner lock of a partition (see groups/registry.py)."""
    return fit_name(f"{topic}-{partition}", ".lock")


def partition_dir(root: str, topic: str, partition: int) -> str:
    return os.path.join(topic_dir(root, topic), partition_dir_name(topic, partition))


def default_root() -> str:
    """``$FSLOG_ROOT``, else ``$XDG_DATA_HOME/fslog``, else ``~/.local/share/fslog``."""
    env = os.environ.get("FSLOG_ROOT")
    if env:
        return env
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(xdg, "fslog")


def check_real_dir(path: str, root: str) -> None:
    """Refuse a directory under the root that is a symlink or resolves outside the root."""
    if os.path.islink(path):
        raise UnsafePathError(
            f"{path} is a symbolic link: fslog does not follow links under its root; remove it")
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise UnsafePathError(f"{path} resolves outside the root {root}: refusing to use it")


def tmp_dir(root: str) -> str:
    """Where topic creation and topic and group deletion are staged (renamed in or out)."""
    return os.path.join(root, TMP_DIR)


def ensure_dir(path: str, root: str) -> bool:
    """Create the directory ``path`` under ``root`` and any missing parents below the root;
    return True if ``path`` was created. Every level below the root is checked before
    anything is created in or through it: a symbolic link is refused (UnsafePathError),
    so nothing is ever created outside the root. The root itself may be a link."""
    root = os.path.abspath(root)
    path = os.path.abspath(path)
    rel = os.path.relpath(path, root)
    if rel == os.curdir:
        return False
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise ValueError(f"{path} is not under {root}")
    cur = root
    created = False
    for part in rel.split(os.sep):
        cur = os.path.join(cur, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            try:
                os.mkdir(cur, DIR_MODE)
                created = True
                continue
            except FileExistsError:  # a concurrent creator: look at what it made
                st = os.lstat(cur)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(
                f"{cur} is a symbolic link: fslog does not follow links under its root; remove it")
        if not stat.S_ISDIR(st.st_mode):
            raise FslogError(f"{cur} is not a directory: move it out of the way")
        created = False
    return created


def makedirs(path: str) -> bool:
    """Create ``path`` (and parents) with DIR_MODE; return True if it was created."""
    if os.path.isdir(path) and not os.path.islink(path):
        return False
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    return True


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TMP_RE = re.compile(r".+" + re.escape(TMP_INFIX) + r"([1-9][0-9]{0,9})\Z")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (of any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except (OverflowError, ValueError):
        return True  # not a pid we can judge: leave its files alone
    return True


def remove_stale_temp_files(directory: str) -> int:
    """Remove the temp files of ``write_atomic`` (``NAME.tmp.<pid>``) in ``directory`` whose
    writer is gone (killed between writing and renaming): one listdir, and one kill(pid, 0)
    a temp file. Temp files of live processes and of this one are left alone. Returns the
    number removed; never raises for a file that vanished or cannot be removed."""
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    me = os.getpid()
    removed = 0
    for name in names:
        m = _TMP_RE.match(name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid == me or pid_alive(pid):
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed += 1
        except OSError:
            pass
    return removed


def write_atomic(path: str, data: bytes, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, rename, fsync dir.

    ``mode`` is the file's permission bits (set before any byte is written, so a file
    meant to be private never exists readable by others). The temp file is ``PATH.tmp.<pid>``; afterwards the temp files that dead writers left
    in the same directory (kill -9 between write and rename) are removed."""
    directory = os.path.dirname(path) or "."
    tmp = f"{path}{TMP_INFIX}{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        try:
            if mode != FILE_MODE:
                os.fchmod(fd, mode)  # the umask may have taken bits off; never added any
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)  # a full disk must not leave litter behind
        except OSError:
            pass
        raise
    remove_stale_temp_files(directory)
    fsync_dir(directory)
