"""What ``Log.clean`` and ``Log.verify`` report (``fslog clean --json``, ``fslog verify
--json``): plain dataclasses, no I/O. Also importable from ``fslog.log``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PartitionCleaned:
    """What one clean of a partition did (``fslog clean --json``: one per partition)."""
    topic: str
    partition: int
    cleanup_policy: str
    start_offset: int                         # the log start offset afterwards
    segments_deleted: list[dict[str, Any]]    # base_offset, end_offset, size_bytes, reason
    bytes_deleted: int
    offsets_deleted: int
    compaction: dict[str, Any] | None         # None: not a compacted topic
    recovered: list[str]                      # leftovers of cleans cut short, dealt with

    @property
    def records_removed(self) -> int:
        """Superseded records, tombstones and keyless records compaction removed."""
        c = self.compaction or {}
        return c.get("records_removed", 0) + c.get("tombstones_removed", 0) + c.get("keyless_removed", 0)

    @property
    def compacted(self) -> bool:
        return bool(self.compaction and self.compaction["ran"])


@dataclass
class CleanReport:
    """``Log.clean``: the topics looked at, each partition cleaned, and one line per topic
    or partition that could not be cleaned."""
    topics: list[str]
    partitions: list[PartitionCleaned] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def segments_deleted(self) -> int:
        return sum(len(p.segments_deleted) for p in self.partitions)

    def as_json(self) -> dict[str, Any]:
        """The document ``fslog clean --json`` prints (a contract: fields stay)."""
        return {"partitions": [asdict(p) for p in self.partitions],
                "segments_deleted": self.segments_deleted,
                "bytes_deleted": sum(p.bytes_deleted for p in self.partitions),
                "records_removed": sum(p.records_removed for p in self.partitions)}


@dataclass
class TopicVerified:
    """``fslog verify`` of one topic. Problems and repairs are dicts: kind, path,
    position, offset, message."""
    topic: str
    partitions: list[dict[str, Any]]
    batches: int
    records: int
    problems: list[dict[str, Any]]
    repaired: list[dict[str, Any]]


@dataclass
class VerifyReport:
    topics: list[TopicVerified] = field(default_factory=list)

    @property
    def problems(self) -> list[dict[str, Any]]:
        return [p for t in self.topics for p in t.problems]

    @property
    def repaired(self) -> list[dict[str, Any]]:
        return [p for t in self.topics for p in t.repaired]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """The document ``fslog verify --json`` prints (a contract: fields stay)."""
        return {"ok": self.ok, "topics": [asdict(t) for t in self.topics]}
