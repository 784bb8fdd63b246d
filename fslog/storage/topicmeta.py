"""``topic.json``: a topic's partition count and config overrides, read and written.

Layout: ``ROOT/topics/NAME/topic.json`` = ``{"partitions": N, "config": {overrides},
"id": topic id, "created_at": ms}`` (the id tells a topic from an earlier one of the same
name: committed group offsets of another incarnation are not used),
replaced atomically (``files.write_atomic``) so a reader in any process sees the old or
the new document, never a mix. No lock: readers and writers may run concurrently.

Used by ``Topic`` (to open a topic) and by the cleaner (to see the configuration as it
is on disk now, without building a ``Topic``).
"""

from __future__ import annotations

import base64
import errno
import json
import os
from typing import Any, NamedTuple

from ..errors import FslogError, UnknownTopicError, UnsafePathError
from . import files

MAX_PARTITIONS = 10000
_META_MAX_BYTES = 1 << 20  # a topic.json is a few hundred bytes; never read a huge one whole


class TopicMeta(NamedTuple):
    partitions: int
    config: dict[str, Any]
    id: str | None          # the topic id (Kafka's): None for a topic made before ids
    created_at: int | None  # ms since the epoch


def read_topic_meta(root: str, name: str) -> tuple[int, dict[str, Any]]:
    """(partition count, config overrides) of topic ``name`` under ``root``."""
    meta = read_topic_doc(root, name)
    return meta.partitions, meta.config


def read_topic_doc(root: str, name: str) -> TopicMeta:
    """The whole ``topic.json`` of topic ``name``, checked: anything a hand edit or
    damage could leave (``"partitions": 1e9``, ``true``, ``-1``) raises FslogError naming
    the file, so one bad topic never hangs or hides the others."""
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
            meta = json.loads(f.read(_META_MAX_BYTES))
        return _check_meta(meta)
    except FileNotFoundError:
        raise UnknownTopicError(f"topic {name!r}: {cfg_path} is missing") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePathError(f"{cfg_path} is a symbolic link: fslog does not follow "
                                  f"links under its root; remove it") from None
        raise
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise FslogError(f"{cfg_path} is unreadable ({e}); restore it or recreate the topic") from None


def _check_meta(meta) -> TopicMeta:
    if not isinstance(meta, dict):
        raise ValueError("not a JSON object")
    n = meta.get("partitions")
    if type(n) is not int or not 1 <= n <= MAX_PARTITIONS:
        raise ValueError(f'"partitions" is {json.dumps(n)}, not a whole number from 1 to '
                         f'{MAX_PARTITIONS}')
    overrides = meta.get("config", {})
    if not isinstance(overrides, dict):
        raise ValueError('"config" is not an object')
    topic_id = meta.get("id")
    if topic_id is not None and not isinstance(topic_id, str):
        raise ValueError('"id" is not a string')
    created = meta.get("created_at")
    if created is not None and type(created) is not int:
        raise ValueError('"created_at" is not a whole number')
    return TopicMeta(n, dict(overrides), topic_id, created)


def new_topic_id() -> str:
    """A random 128-bit id, base64url without padding (how Kafka prints topic ids)."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


def write_topic_meta(path: str, partitions: int, overrides: dict[str, Any],
                     topic_id: str | None = None, created_at: int | None = None) -> None:
    """Write ``topic.json`` into the topic directory ``path`` atomically."""
    doc: dict[str, Any] = {"partitions": partitions, "config": overrides}
    if topic_id is not None:
        doc["id"] = topic_id
    if created_at is not None:
        doc["created_at"] = created_at
    data = json.dumps(doc, indent=2, sort_keys=True)
    files.write_atomic(os.path.join(path, files.TOPIC_CONFIG_FILE), data.encode() + b"\n")
