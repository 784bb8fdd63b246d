"""``topic.json``: a topic's partition count and config overrides, read and written.

Layout: ``ROOT/topics/NAME/topic.json`` = ``{"partitions": N, "config": {overrides}}``,
replaced atomically (``files.write_atomic``) so a reader in any process sees the old or
the new document, never a mix. No lock: readers and writers may run concurrently.

Used by ``Topic`` (to open a topic) and by the cleaner (to see the configuration as it
is on disk now, without building a ``Topic``).
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any

from ..errors import FslogError, UnknownTopicError, UnsafePathError
from . import files


def read_topic_meta(root: str, name: str) -> tuple[int, dict[str, Any]]:
    """(partition count, config overrides) of topic ``name`` under ``root``."""
    path = files.topic_dir(root, name)
    cfg_path = os.path.join(path, files.TOPIC_CONFIG_FILE)
    if not os.path.lexists(path):
        raise UnknownTopicError(
            f"topic {name!r} does not exist in {root}: create it with "
            f"'fslog topic create {name}' (or produce to it)")
    files.check_real_dir(path, root)
    try:
        fd = os.open(cfg_path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            meta = json.loads(f.read())
        return int(meta["partitions"]), dict(meta.get("config", {}))
    except FileNotFoundError:
        raise UnknownTopicError(f"topic {name!r}: {cfg_path} is missing") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePathError(f"{cfg_path} is a symbolic link: fslog does not follow "
                                  f"links under its root; remove it") from None
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise FslogError(f"{cfg_path} is unreadable ({e}); restore it or recreate the topic") from None


def write_topic_meta(path: str, partitions: int, overrides: dict[str, Any]) -> None:
    """Write ``topic.json`` into the topic directory ``path`` atomically."""
    data = json.dumps({"partitions": partitions, "config": overrides}, indent=2, sort_keys=True)
    files.write_atomic(os.path.join(path, files.TOPIC_CONFIG_FILE), data.encode() + b"\n")
