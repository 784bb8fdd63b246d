"""Committed offsets of the groups serve coordinates: OffsetCommit and OffsetFetch.

The offsets are the CLI's own files (``groups/registry.py``): what a kafka-python group
commits, ``fslog group describe`` shows and ``fslog consume --group`` continues from, and
back. The coordinator (``coordinator.py``) decides whether a commit is allowed (member,
generation); this module reads and writes. Every method blocks (file I/O): worker
threads only; one object per server, shared by them (nothing in it but the set of
damaged files already logged).
"""

from __future__ import annotations

import logging

from kio.schema.errors import ErrorCode

from ..errors import FslogError, InvalidNameError, UnknownTopicError, UnreadableOffsetError
from ..groups.registry import Registry
from ..groups.served import GroupInUseError
from ..storage import files


def _valid_topic(name) -> bool:
    try:
        files.validate_name(name, "topic")
        return True
    except (InvalidNameError, TypeError):
        return False


class GroupOffsets:
    def __init__(self, log, logger: logging.Logger):
        self.log = log
        self.logger = logger
        self._warned: set[str] = set()

    def write(self, group_id: str, offsets: list[tuple[str, int, int]],
              member_id: str, standalone: bool) -> list[ErrorCode]:
        """Blocking: commit ``(topic, partition, offset)``s into the group's files."""
        log = self.log
        reg = Registry(self.log.root, group_id)
        out = []
        todo = []
        for topic, p, offset in offsets:
            try:
                t = log.topic(topic)
            except (UnknownTopicError, InvalidNameError):
                out.append(ErrorCode.unknown_topic_or_partition)
                continue
            if not 0 <= p < t.partition_count:
                out.append(ErrorCode.unknown_topic_or_partition)
                continue
            if offset < 0:
                out.append(ErrorCode.invalid_commit_offset_size)
                continue
            out.append(ErrorCode.none)
            todo.append((len(out) - 1, topic, p, offset))
        who = member_id or "fslog serve client"
        if standalone:
            from ..groups.served import commit_outside_members
            try:
                commit_outside_members(reg, [(t, p, o) for _, t, p, o in todo], who)
            except GroupInUseError as e:
                self.logger.warning("serve: OffsetCommit for %r refused (UNKNOWN_MEMBER_ID): %s",
                                    group_id, e)
                for i, *_ in todo:
                    out[i] = ErrorCode.unknown_member_id
            return out
        for i, topic, p, offset in todo:
            try:
                reg.commit(topic, p, offset, who)
            except (OSError, FslogError) as e:
                self.logger.warning("serve: group %r: cannot commit %s/%d: %s", group_id,
                                    topic, p, e)
                out[i] = ErrorCode.kafka_storage_error
        return out

    def read(self, group_id: str, wanted: list[tuple[str, list[int]]] | None):
        """Blocking: ``[(topic, [(partition, offset or -1, error)])]``; every committed
        offset of the group when ``wanted`` is None. A damaged offset file is
        KAFKA_STORAGE_ERROR (never "no offset") and one log line naming it."""
        try:
            reg = Registry(self.log.root, group_id, create=False)
        except FslogError:
            return [(t, [(p, -1, ErrorCode.none) for p in ps]) for t, ps in (wanted or [])]
        if wanted is None:
            damaged: list = []
            found = reg.committed_all(damaged)
            by_topic: dict[str, list] = {}
            for (t, p), off in sorted(found.items()):
                by_topic.setdefault(t, []).append((p, off, ErrorCode.none))
            for e in damaged:
                self._warn_damaged(e)
                by_topic.setdefault(e.topic, []).append((e.partition, -1,
                                                         ErrorCode.kafka_storage_error))
            return sorted(by_topic.items())
        out = []
        for t, ps in wanted:
            rows = []
            for p in ps:
                o: int | None
                try:
                    o = reg.committed(t, p) if _valid_topic(t) else None
                except UnreadableOffsetError as e:
                    self._warn_damaged(e)
                    rows.append((p, -1, ErrorCode.kafka_storage_error))
                    continue
                except (FslogError, OSError) as e:
                    self.logger.warning("serve: group %r: cannot read the committed offset "
                                        "of %s/%d: %s", group_id, t, p, e)
                    rows.append((p, -1, ErrorCode.kafka_storage_error))
                    continue
                rows.append((p, -1 if o is None else int(o), ErrorCode.none))
            out.append((t, rows))
        return out

    def _warn_damaged(self, e: UnreadableOffsetError) -> None:
        key = e.path or str(e)
        if key not in self._warned:
            self._warned.add(key)
            self.logger.warning("serve: OffsetFetch answers KAFKA_STORAGE_ERROR: %s", e)
