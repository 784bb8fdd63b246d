"""Checking a log: every batch (header, CRC, records), offset continuity, and both indexes.

``verify_topic`` reads everything and reports problems, each with file, byte position
and offset. The tail of a partition's active segment is checked under the partition
lock, so a write in progress is never mistaken for a torn tail. With ``repair=True``
it truncates torn tails (a crashed write) and rebuilds inconsistent or missing indexes;
corruption in the middle of a log is reported and left alone — fslog never silently
drops data that was acknowledged.
"""

from __future__ import annotations

import mmap
import os

from ..errors import CorruptRecordError
from ..records import batch as rb
from . import files
from .cleaner import background_failures, clean_lock, describe_failure, leftovers, pending_swaps, recover
from .index import OFFSET_WIDTH, TIME_WIDTH, not_a_file_error, open_offset_index, open_time_index
from .locks import is_locked_by_someone
from .segment import SegmentWriter


def _problem(kind: str, path: str, position: int | None, offset: int | None, message: str) -> dict:
    return {"kind": kind, "path": path, "position": position, "offset": offset,
            "message": message}


def _check_segment(path: str, base: int, expect_first: int | None, compact: bool):
    """Scan one .log. Returns (problems, positions{pos: base offset}, next offset,
    batches, records, torn_at, damaged). Damage in the middle is reported and stepped
    over (to the next valid batch), so one bad batch does not hide the rest."""
    problems: list[dict] = []
    positions: dict[int, int] = {}
    batches = records = 0
    nxt = expect_first if expect_first is not None else base
    torn_at = None
    damaged = False
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return problems, positions, nxt, 0, 0, None, False
        with mmap.mmap(fd, size, prot=mmap.PROT_READ) as m:
            pos = 0
            prev_next = None
            while pos < size:
                malformed = False
                try:
                    h = rb.check_batch(m, pos, size, path)
                    malformed = True  # a CRC-valid batch whose records do not parse
                    recs = rb.decode_records(m, pos, h, path)
                except (rb.Incomplete, CorruptRecordError) as e:
                    rest = m[pos:size] if size - pos <= (256 << 20) else None
                    if not malformed and rest is not None and rb.tail_is_torn(rest, nxt):
                        # nothing valid after it: a write cut short by kill -9, or zeros /
                        # stale blocks after a power loss: a torn tail
                        torn_at = pos
                        what = ("incomplete batch" if isinstance(e, rb.Incomplete)
                                else "damaged last batch")
                        problems.append(_problem(
                            "torn-tail", path, pos, nxt,
                            f"{path}: position {pos}: {what}, {size - pos} bytes to the end of "
                            f"the file (a write cut short by a crash"
                            + ("" if isinstance(e, rb.Incomplete) else ", or damage to the last batch")
                            + f"; records from offset {nxt} on); --repair truncates it"))
                        break
                    damaged = True
                    why = str(e) if isinstance(e, CorruptRecordError) else \
                        f"{path}: position {pos}: damaged batch header"
                    found = rb.find_valid_batch(rest, 1, nxt + 1) if rest is not None else -1
                    if found < 0:  # too far to search, or nothing valid follows
                        problems.append(_problem(
                            "corrupt", path, pos, nxt,
                            f"{why}; {size - pos} bytes from here to the end of the segment "
                            f"cannot be read (not repairable: restore the file from a copy)"))
                        break
                    resume = pos + found
                    resume_offset = rb.read_header(m, resume).base_offset
                    lost = (f"offsets {nxt}..{resume_offset - 1}" if resume_offset > nxt
                            else f"offset {nxt}")
                    problems.append(_problem(
                        "corrupt", path, pos, nxt,
                        f"{why}; {found} bytes ({lost}) cannot be read, valid batches resume at "
                        f"position {resume} (not repairable: restore the file from a copy; "
                        f"'fslog consume --skip-corrupt' reads around it)"))
                    pos = resume
                    prev_next = nxt = resume_offset
                    continue
                # Batch ranges continue each other, in compacted logs too (the cleaner keeps
                # them contiguous): the base offset is outside the CRC, this is its guard.
                # A batch that breaks continuity is counted under the offsets it must have.
                true_base = h.base_offset
                if prev_next is None and h.base_offset != base:
                    true_base = base
                    problems.append(_problem(
                        "offsets", path, pos, base,
                        f"{path}: position {pos}: first batch starts at offset {h.base_offset}, "
                        f"but the segment's base offset is {base} (a damaged batch header; not "
                        f"repairable: restore the file from a copy)"))
                elif prev_next is not None and h.base_offset != prev_next:
                    true_base = prev_next
                    problems.append(_problem(
                        "offsets", path, pos, prev_next,
                        f"{path}: position {pos}: batch starts at offset {h.base_offset}, expected "
                        f"{prev_next} (offsets must be dense and increasing: a damaged batch "
                        f"header; not repairable: restore the file from a copy)"))
                if true_base != h.base_offset:
                    damaged = True
                # Record offsets increase within the batch's range; a compacted batch may
                # start and end past its first and last record (Kafka's cleaner keeps the
                # range), otherwise they are exactly base..last.
                dense = h.record_count == h.last_offset_delta + 1
                if recs and (recs[0].offset < h.base_offset or recs[-1].offset > h.last_offset
                             or (dense and (recs[0].offset != h.base_offset
                                            or recs[-1].offset != h.last_offset))
                             or any(a.offset >= b.offset for a, b in zip(recs, recs[1:]))):
                    problems.append(_problem(
                        "offsets", path, pos, h.base_offset,
                        f"{path}: position {pos}: record offsets {recs[0].offset}..{recs[-1].offset} "
                        f"do not match the batch header {h.base_offset}..{h.last_offset}"))
                positions[pos] = h.base_offset
                prev_next = nxt = true_base + h.last_offset_delta + 1
                batches += 1
                records += len(recs)
                pos += h.size
    finally:
        os.close(fd)
    return problems, positions, nxt, batches, records, torn_at, damaged


def _check_indexes(directory: str, base: int, positions: dict[int, int], next_offset: int,
                   size: int, interval: int) -> list[dict]:
    problems = []
    ipath = os.path.join(directory, files.segment_name(base, files.INDEX_SUFFIX))
    tpath = os.path.join(directory, files.segment_name(base, files.TIMEINDEX_SUFFIX))
    for p, width in ((ipath, OFFSET_WIDTH), (tpath, TIME_WIDTH)):
        if os.path.lexists(p) and not os.path.isfile(p):
            problems.append(_problem("not-a-file", p, None, None, str(not_a_file_error(p))))
        elif not os.path.exists(p):
            if len(positions) > 1 and size > 2 * interval:
                problems.append(_problem("index", p, None, None, f"{p}: missing; --repair rebuilds it"))
        elif os.path.getsize(p) % width:
            problems.append(_problem("index", p, None, None,
                                     f"{p}: size is not a multiple of {width} bytes; --repair rebuilds it"))
    idx = open_offset_index(ipath)
    try:
        prev = -1
        for i, (rel, pos) in enumerate(idx):
            if rel <= prev or positions.get(pos) != base + rel:
                problems.append(_problem(
                    "index", ipath, i * OFFSET_WIDTH, base + rel,
                    f"{ipath}: entry {i} (offset {base + rel} at position {pos}) does not point at "
                    f"that batch in the log; --repair rebuilds the index"))
                break
            prev = rel
    finally:
        idx.close()
    tidx = open_time_index(tpath)
    try:
        prev_ts, prev_rel = None, -1
        for i, (ts, rel) in enumerate(tidx):
            if rel < prev_rel or (prev_ts is not None and ts < prev_ts) or base + rel >= max(next_offset, base + 1):
                problems.append(_problem(
                    "index", tpath, i * TIME_WIDTH, base + rel,
                    f"{tpath}: entry {i} (timestamp {ts}, offset {base + rel}) is out of order or "
                    f"past the end of the segment; --repair rebuilds the index"))
                break
            prev_ts, prev_rel = ts, rel
    finally:
        tidx.close()
    return problems


def verify_partition(partition, repair: bool = False) -> dict:
    if not os.path.isdir(partition.path):
        # topic creation makes every partition's directory: a missing one was removed
        return {"partition": partition.number, "segments": 0, "batches": 0, "records": 0,
                "problems": [_problem(
                    "missing-partition", partition.path, None, None,
                    f"{partition.path}: the directory of partition {partition.topic}/"
                    f"{partition.number} is missing (topic.json lists it): its records are "
                    f"gone (not repairable: restore it from a copy; producers refuse to "
                    f"start it again at offset 0 until it exists)")], "repaired": []}
    compact = partition.config.compacted
    interval = partition.config.index_interval_bytes
    problems: list[dict] = []
    repaired: list[dict] = []
    batches = records = 0
    swaps = pending_swaps(partition)
    left = leftovers(partition)
    if (swaps or left) and not repair and is_locked_by_someone(
            os.path.join(partition.path, files.CLEANER_LOCK_FILE)):
        swaps, left = [], []  # a clean is running: its files are work in progress
    if left and not swaps and not repair:
        for path in left:
            problems.append(_problem(
                "interrupted-clean", path, None, None,
                f"{path}: the leftover of a clean cut short (never part of the log); --repair "
                f"or the next clean removes it"))
    if (swaps or left) and repair:
        with clean_lock(partition):
            for line in recover(partition):
                repaired.append(_problem("interrupted-clean", partition.path, None, None, line))
    elif swaps:
        for m in swaps:
            problems.append(_problem(
                "interrupted-clean", m, None, None,
                f"{m}: a compaction was cut short while swapping its segments in (old and new "
                f"segments overlap; readers are unaffected); --repair or the next clean finishes it"))
        return {"partition": partition.number, "segments": len(partition.segment_bases()),
                "batches": 0, "records": 0, "problems": problems, "repaired": repaired}
    bases = partition.segment_bases()
    expect = None
    for i, base in enumerate(bases):
        last = i == len(bases) - 1
        path = os.path.join(partition.path, files.segment_name(base))
        lock = partition._lock if last else None
        if lock is not None:
            lock.acquire()
        try:
            if expect is not None and (base < expect or (not compact and base != expect)):
                problems.append(_problem(
                    "offsets", path, 0, base,
                    f"{path}: segment base offset {base} does not follow the previous segment, "
                    f"which ends before offset {expect}"))
            try:
                probs, positions, nxt, nb, nr, torn_at, damaged = _check_segment(path, base, None, compact)
            except FileNotFoundError:
                expect = None  # deleted by retention (or merged by compaction) meanwhile
                continue
            end_unknown = False
            if not last and torn_at is not None:
                # Only the active segment can end in a write cut short by a crash (the next
                # writer truncates it before it ever rolls): in a sealed segment it is damage.
                for p in probs:
                    if p["kind"] == "torn-tail":
                        p["kind"] = "corrupt"
                        p["message"] = (f"{path}: position {p['position']}: the batch at the end "
                                        f"of this sealed segment is damaged or cut short; its "
                                        f"records cannot be read (not repairable: restore the "
                                        f"file from a copy)")
                torn_at = None
                damaged = True
                end_unknown = True
            batches += nb
            records += nr
            size = os.path.getsize(path)
            valid_size = torn_at if torn_at is not None else size
            # index entries pointing into damaged bytes are a consequence, not a second problem
            iprobs = [] if damaged else _check_indexes(partition.path, base, positions, nxt,
                                                       valid_size, interval)
            fixable_tail = torn_at is not None and last
            if repair and (iprobs or fixable_tail) and not any(
                    p["kind"] in ("corrupt", "offsets", "not-a-file") for p in probs + iprobs):
                w = SegmentWriter(partition.path, base, interval)  # truncates a torn tail
                try:
                    if torn_at is not None and w.size > torn_at:
                        os.ftruncate(w.fd, torn_at)
                    w.rebuild_indexes()
                finally:
                    w.close()
                for p in probs + iprobs:
                    if p["kind"] in ("torn-tail", "index"):
                        repaired.append(p)
                probs = [p for p in probs if p["kind"] not in ("torn-tail", "index")]
                iprobs = []
            problems.extend(probs)
            problems.extend(iprobs)
            # after damage at a segment's end its true end offset is unknown
            expect = None if end_unknown else nxt
        finally:
            if lock is not None:
                lock.release()
    return {"partition": partition.number, "segments": len(bases), "batches": batches,
            "records": records, "problems": problems, "repaired": repaired}


def verify_topic(topic, repair: bool = False) -> dict:
    parts = [verify_partition(p, repair=repair) for p in topic.partitions()]
    for number, failure in background_failures(topic):
        for res in parts:
            if res["partition"] == number:
                res["problems"].append(_problem(
                    "compaction-failed", files.partition_dir(topic.root, topic.name, number),
                    None, None, describe_failure(topic.name, number, failure)))
    return {
        "topic": topic.name,
        "partitions": parts,
        "batches": sum(p["batches"] for p in parts),
        "records": sum(p["records"] for p in parts),
        "problems": [x for p in parts for x in p["problems"]],
        "repaired": [x for p in parts for x in p["repaired"]],
    }
