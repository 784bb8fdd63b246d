"""The consumer protocol's bytes inside JoinGroup and SyncGroup: Kafka's
ConsumerProtocolSubscription (a member's topics) and ConsumerProtocolAssignment (its
partitions), which the coordinator otherwise passes through unread.

Read to show network members in the group's files (``fslog group describe``), written to
describe the CLI's members to admin clients (DescribeGroups). Every version starts with
the same fields (version int16, then an array of topics), so v0 is read and written.
Pure functions; safe from any thread.
"""

from __future__ import annotations

import struct


def _read_str(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from(">h", buf, pos)
    pos += 2
    if n < 0:
        return "", pos
    return buf[pos:pos + n].decode("utf-8", "replace"), pos + n


def subscription_topics(metadata: bytes) -> list[str]:
    """The topics of a ConsumerProtocolSubscription (every version starts the same)."""
    try:
        pos = 2
        (count,) = struct.unpack_from(">i", metadata, pos)
        pos += 4
        out = []
        for _ in range(max(0, min(count, 100000))):
            t, pos = _read_str(metadata, pos)
            out.append(t)
        return sorted(out)
    except (struct.error, ValueError):
        return []


def assignment_partitions(assignment: bytes) -> list[tuple[str, int]]:
    """The partitions of a ConsumerProtocolAssignment (every version starts the same)."""
    try:
        pos = 2
        (count,) = struct.unpack_from(">i", assignment, pos)
        pos += 4
        out = []
        for _ in range(max(0, min(count, 100000))):
            t, pos = _read_str(assignment, pos)
            (n,) = struct.unpack_from(">i", assignment, pos)
            pos += 4
            for _ in range(max(0, min(n, 100000))):
                (p,) = struct.unpack_from(">i", assignment, pos)
                pos += 4
                out.append((t, p))
        return sorted(out)
    except (struct.error, ValueError):
        return []


def encode_subscription(topics: list[str]) -> bytes:
    """ConsumerProtocolSubscription v0 (for describing the CLI's members to admin tools)."""
    out = [struct.pack(">hi", 0, len(topics))]
    for t in topics:
        b = t.encode()
        out.append(struct.pack(">h", len(b)) + b)
    out.append(struct.pack(">i", -1))
    return b"".join(out)


def encode_assignment(parts: list[tuple[str, int]]) -> bytes:
    """ConsumerProtocolAssignment v0."""
    by_topic: dict[str, list[int]] = {}
    for t, p in parts:
        by_topic.setdefault(t, []).append(int(p))
    out = [struct.pack(">hi", 0, len(by_topic))]
    for t, ps in sorted(by_topic.items()):
        b = t.encode()
        out.append(struct.pack(">h", len(b)) + b + struct.pack(">i", len(ps)))
        out.append(b"".join(struct.pack(">i", p) for p in sorted(ps)))
    out.append(struct.pack(">i", -1))
    return b"".join(out)
