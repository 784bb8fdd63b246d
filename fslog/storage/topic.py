"""A topic: a directory holding ``topic.json`` (partition count, config overrides) and one
directory per partition. Knows where a record goes (``partitioner.py``).

``Topic`` objects are cheap views; several processes may hold them at once. Creation and
deletion live in ``log.py``.
"""

from __future__ import annotations

import os
from typing import Iterable

from ..config import KEYS, TopicConfig, parse_config, valid_keys_text
from ..errors import ConfigError, FslogError
from ..records.partitioner import partition_for_key
from . import files
from .cleaner import clean_after_roll, dirty_ratio
from .partition import Partition
from .topicmeta import read_topic_doc, write_topic_meta


class Topic:
    def __init__(self, root: str, name: str):
        self.root = root
        self.name = files.validate_name(name, "topic")
        self.path = files.topic_dir(root, name)
        meta = read_topic_doc(root, self.name)
        self.partition_count, self.id, self.created_at = meta.partitions, meta.id, meta.created_at
        try:
            self.config = TopicConfig(meta.config)
        except (FslogError, ValueError, TypeError) as e:
            cfg_path = os.path.join(self.path, files.TOPIC_CONFIG_FILE)
            raise FslogError(f"{cfg_path} is unreadable ({e}); restore it or recreate the "
                             f"topic") from None
        self.created = False  # set by Log.create_topic on the object it created
        self._partitions: dict[int, Partition] = {}

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, partitions={self.partition_count})"

    def check_partition(self, number: int, what: str | None = None) -> None:
        """Refuse a partition number this topic does not have. ``what`` (e.g. the
        option that gave it) starts the message instead of "there is no partition N"."""
        if not 0 <= number < self.partition_count:
            have = f"topic {self.name!r} has partitions 0..{self.partition_count - 1}"
            raise FslogError(f"{what}: {have}" if what else f"{have}; there is no partition {number}")

    def partition(self, number: int) -> Partition:
        self.check_partition(number)
        p = self._partitions.get(number)
        if p is None:
            p = self._partitions[number] = Partition(self.root, self.name, number, self.config,
                                                     on_roll=clean_after_roll)
        return p

    def partitions(self) -> list[Partition]:
        return [self.partition(i) for i in range(self.partition_count)]

    def partition_for(self, key: bytes) -> int:
        return partition_for_key(key, self.partition_count)

    def end_offsets(self) -> dict[int, int]:
        return {p.number: p.end_offset() for p in self.partitions()}

    def describe(self) -> dict:
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

    def alter_config(self, changes: dict, delete: Iterable[str] = ()) -> None:
        """Set the keys of ``changes`` and return the keys in ``delete`` to their defaults,
        validated first, in one atomic write (``topic alter``). Retention and compaction
        keys take effect at the next clean; segment keys for producers opened afterwards."""
        if not changes and not delete:
            raise ConfigError("nothing to change: give --config KEY=VALUE and/or --delete-config KEY")
        overrides = dict(self.config.overrides)
        for key in delete:
            if key not in KEYS:
                raise ConfigError(f"--delete-config {key!r}: unknown config key; valid keys are "
                                  f"{valid_keys_text()}")
            overrides.pop(key, None)
        overrides.update(parse_config(changes))
        self.set_config(overrides)

    def close(self) -> None:
        for p in self._partitions.values():
            p.close()

