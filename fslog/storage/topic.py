"""A topic: a directory holding ``topic.json`` (partition count, config overrides) and one
directory per partition. Knows where a record goes (``partitioner.py``).

``Topic`` objects are cheap views; several processes may hold them at once. Creation and
deletion live in ``log.py``.
"""

from __future__ import annotations

import base64
import errno
import json
import os

from . import files
from ..config import TopicConfig, parse_config
from ..errors import FslogError, UnknownTopicError, UnsafePathError
from .partition import Partition
from ..records.partitioner import partition_for_key

MAX_PARTITIONS = 10000
_META_MAX_BYTES = 1 << 20  # a topic.json is a few hundred bytes; never read a huge one whole


class Topic:
    def __init__(self, root: str, name: str):
        self.root = root
        self.name = files.validate_name(name, "topic")
        self.path = files.topic_dir(root, name)
        cfg_path = os.path.join(self.path, files.TOPIC_CONFIG_FILE)
        if not os.path.lexists(self.path):
            raise UnknownTopicError(
                f"topic {name!r} does not exist in {root}: create it with "
                f"'fslog topic create {name}' (or produce to it)")
        files.check_real_dir(self.path, root)
        try:
            fd = os.open(cfg_path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                meta = json.loads(f.read(_META_MAX_BYTES))
            self.partition_count, overrides, self.id, self.created_at = _check_meta(meta)
        except FileNotFoundError:
            raise UnknownTopicError(f"topic {name!r}: {cfg_path} is missing") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafePathError(f"{cfg_path} is a symbolic link: fslog does not follow "
                                      f"links under its root; remove it") from None
            raise
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise FslogError(f"{cfg_path} is unreadable ({e}); restore it or recreate the topic") from None
        try:
            self.config = TopicConfig(overrides)
        except (FslogError, ValueError, TypeError) as e:
            raise FslogError(f"{cfg_path} is unreadable ({e}); restore it or recreate the topic") from None
        self.created = False  # set by Log.create_topic on the object it created
        self._partitions: dict[int, Partition] = {}

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, partitions={self.partition_count})"

    def partition(self, number: int) -> Partition:
        if not 0 <= number < self.partition_count:
            raise FslogError(
                f"topic {self.name!r} has partitions 0..{self.partition_count - 1}; there is no partition {number}")
        p = self._partitions.get(number)
        if p is None:
            p = self._partitions[number] = Partition(self.root, self.name, number, self.config)
        return p

    def partitions(self) -> list[Partition]:
        return [self.partition(i) for i in range(self.partition_count)]

    def partition_for(self, key: bytes) -> int:
        return partition_for_key(key, self.partition_count)

    def end_offsets(self) -> dict[int, int]:
        return {p.number: p.end_offset() for p in self.partitions()}

    def describe(self) -> dict:
        from .cleaner import dirty_ratio
        compacted = self.config.compacted
        parts = []
        for p in self.partitions():
            bases = p.segment_bases()
            parts.append({
                "partition": p.number,
                "start_offset": p.start_offset(),
                "end_offset": p.end_offset(),
                "size_bytes": p.size_bytes(),
                "segments": len(bases),
                # compaction: share of the sealed segments' bytes not compacted yet
                # (null for a topic that is not compacted)
                "dirty_ratio": round(dirty_ratio(p, bases), 4) if compacted else None,
            })
        return {"name": self.name, "id": self.id, "partitions": parts, "config": self.config.effective(),
                "overrides": dict(self.config.overrides)}

    def set_config(self, overrides: dict) -> None:
        """Replace the stored overrides (validated) atomically."""
        parsed = parse_config(overrides)
        write_topic_meta(self.path, self.partition_count, parsed, self.id, self.created_at)
        self.config = TopicConfig(parsed)

    def close(self) -> None:
        for p in self._partitions.values():
            p.close()


def new_topic_id() -> str:
    """A random 128-bit id, base64url without padding (how Kafka prints topic ids)."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


def _check_meta(meta) -> tuple[int, dict, str | None, int | None]:
    """(partitions, config overrides, topic id, created_at ms) of a parsed topic.json;
    ValueError naming the field for anything a hand edit or damage could leave."""
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
    return n, overrides, topic_id, created


def write_topic_meta(path: str, partitions: int, overrides: dict, topic_id: str | None,
                     created_at: int | None) -> None:
    doc: dict = {"partitions": partitions, "config": overrides}
    if topic_id is not None:
        doc["id"] = topic_id
    if created_at is not None:
        doc["created_at"] = created_at
    data = json.dumps(doc, indent=2, sort_keys=True)
    files.write_atomic(os.path.join(path, files.TOPIC_CONFIG_FILE), data.encode() + b"\n")
