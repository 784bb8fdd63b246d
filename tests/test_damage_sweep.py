"""Every bit of every batch header, and a sample of record bytes, flipped in turn.

Two small topics, one with ``cleanup.policy=delete`` and one compacted (its sealed segment
rewritten by the cleaner, so it holds batches whose offsets have gaps), each with a
sealed segment and an active one. For each flip, through the library (what ``fslog
consume``, ``--skip-corrupt``, ``fslog verify`` and the next ``fslog produce`` call), then
for a representative subset through the CLI itself:

- no record is returned that was not produced, nor under another offset;
- every record before the damaged batch is returned;
- the damage is named (file, position) — by consume, unless the damaged batch is the
  last one of the active segment, which a lockless reader cannot tell from a write in
  progress (the next writer reports it, and ``fslog verify`` does); by verify always;
- ``--skip-corrupt`` loses only the damaged batch;
- the next writer appends, or refuses and leaves the file as it was; it cuts nothing but
  the damaged batch itself when that is the last one of the active segment (and says so).

The one field nothing checks is partitionLeaderEpoch (bytes 12-15): nothing reads it,
and a flip there must change nothing.
"""

from __future__ import annotations

import os
import random
import shutil
import time

import pytest

import fslog
from fslog.errors import CorruptRecordError, FslogError
from fslog.records import batch as rb
from fslog.storage.reader import TopicReader
from fslog.storage.topic import Topic
from fslog.storage.verify import verify_partition

EPOCH = range(12, 16)
RECORD_SAMPLE = 24  # record bytes flipped per batch


def _build(root: str, compact: bool) -> str:
    log = fslog.Log(root)
    name = "c" if compact else "d"
    cfg = {"segment.bytes": "1024"}
    if compact:
        cfg.update({"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"})
    log.create_topic(name, config=cfg)
    part = log.topic(name).partition(0)
    ts = int(time.time() * 1000) - 60_000
    sizes = [3, 5, 4, 3, 2, 1]  # records per batch: three in each segment
    n = 0
    for _i, count in enumerate(sizes):
        recs = []
        for _ in range(count):
            key = b"k%d" % (n % 5) if compact else None
            recs.append((key, b"value-%03d-" % n + b"x" * 40, ts + n, []))
            n += 1
        part.append([rb.encode_records(recs)])
    part.sync()
    part.close()
    if compact:
        log.clean(name, compact_now=True)
    assert len(part.segment_bases()) >= 2
    return name


def _batches(path: str) -> list[tuple[int, int, int, int]]:
    """(position, size, base offset, last offset) of each batch of a segment."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        h = rb.read_header(data, pos)
        out.append((pos, h.size, h.base_offset, h.last_offset))
        pos += h.size
    return out


def _snapshot(d: str) -> dict[str, tuple[bytes, tuple]]:
    out = {}
    for n in os.listdir(d):
        p = os.path.join(d, n)
        with open(p, "rb") as f:
            out[n] = (f.read(), _stamp(p))
    return out


def _stamp(path: str) -> tuple:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


def _restore(d: str, snap: dict, touched: str, pos: int) -> None:
    """Put the partition back as it was: the flipped byte of ``touched``, and whatever
    changed since the snapshot (cut back to its size and rewritten, without O_TRUNC of
    files that did not shrink: that is slow on a busy disk); remove what was added."""
    for n in os.listdir(d):
        if n not in snap:
            os.unlink(os.path.join(d, n))
    for n, (data, stamp) in list(snap.items()):
        p = os.path.join(d, n)
        try:
            now = _stamp(p)
        except FileNotFoundError:
            now = None
        if now == stamp and n != touched:
            continue
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            if now is not None and now[2] == stamp[2] and n == touched and now[0] == stamp[0]:
                os.pwrite(fd, data[pos:pos + 1], pos)  # only the flip to undo
            else:
                if now is None or now[0] != len(data):
                    os.ftruncate(fd, len(data))
                os.pwrite(fd, data, 0)
        finally:
            os.close(fd)
        snap[n] = (data, _stamp(p))


def _read(topic, skip: bool):
    """(records, error, damage skipped): what consume (or --skip-corrupt) returns, and how
    it stops."""
    got: list = []
    reader = TopicReader(topic, skip_corrupt=skip)
    try:
        for r in reader:
            got.append((r.offset, r.key, r.value))
        return got, None, [d for p in reader.readers.values() for d in p.damage]
    except CorruptRecordError as e:
        return got, e, [d for p in reader.readers.values() for d in p.damage]
    finally:
        reader.close()


def _close_unsynced(part) -> None:
    """Close a partition's writer without the fsync of ``close()``: thousands of cases
    on a busy CI disk would spend minutes in fsync, for files thrown away at once."""
    if part._writer is not None:
        part._writer.close()
        part._writer = None
    for fd in part._unsynced:
        os.close(fd)
    part._unsynced = []


class Sweep:
    def __init__(self, root: str, compact: bool):
        self.root = root
        self.name = _build(root, compact)
        self.dir = os.path.join(root, "topics", self.name, f"{self.name}-0")
        self.snap = _snapshot(self.dir)
        self.topic = Topic(root, self.name)
        self.part = self.topic.partition(0)
        self.truth, err, _ = _read(self.topic, False)
        assert err is None and self.truth
        segs = sorted(n for n in self.snap if n.endswith(".log"))
        self.sealed, self.active = segs[0], segs[-1]

    def cases(self, which: str, rng: random.Random):
        """(segment, batch, last-of-active?, byte position, bit) for every header bit of
        every batch of the segment, and a sample of its record bytes."""
        seg = self.sealed if which == "sealed" else self.active
        batches = _batches(os.path.join(self.dir, seg))
        for i, b in enumerate(batches):
            last = seg == self.active and i == len(batches) - 1
            for byte in range(rb.HEADER_SIZE):
                for bit in range(8):
                    yield seg, b, last, b[0] + byte, bit
            for byte in rng.sample(range(rb.HEADER_SIZE, b[1]), min(RECORD_SAMPLE, b[1] - rb.HEADER_SIZE)):
                yield seg, b, last, b[0] + byte, rng.randrange(8)

    def flip(self, seg: str, pos: int, bit: int) -> bytes:
        path = os.path.join(self.dir, seg)
        data = bytearray(self.snap[seg][0])
        data[pos] ^= 1 << bit
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data[pos:pos + 1], pos)
        finally:
            os.close(fd)
        return bytes(data)

    def check(self, seg: str, batch, last: bool, pos: int, bit: int) -> None:
        where = (seg, pos, bit)
        path = os.path.join(self.dir, seg)
        damaged = self.flip(seg, pos, bit)
        base, top = batch[2], batch[3]
        before = [r for r in self.truth if r[0] < base]
        others = [r for r in self.truth if not base <= r[0] <= top]
        harmless = pos - batch[0] in EPOCH
        truth = set(self.truth)

        # fslog consume
        got, err, _ = _read(self.topic, False)
        assert set(got) <= truth and got == sorted(got), where  # nothing invented, offsets kept
        assert got[:len(before)] == before, where                # everything before the damage
        if harmless:
            assert got == self.truth and err is None, where
        elif err is not None:
            assert f"{path}: position " in str(err), (where, str(err))
        else:
            assert last and got == before, (where, got)          # a tail torn, for a reader

        # fslog consume --skip-corrupt
        got, err, skipped = _read(self.topic, True)
        assert err is None, (where, str(err))
        assert set(got) <= truth and got == sorted(got), where
        assert set(others) <= set(got), (where, sorted(set(others) - set(got))[:3])
        if not harmless and not last:
            assert skipped and all(d["path"] == path for d in skipped), (where, skipped)

        # fslog verify
        report = verify_partition(self.part)
        if harmless:
            assert report["problems"] == [], (where, report["problems"])
        else:
            assert any(p["path"] == path for p in report["problems"]), (where, report["problems"])

        # the next fslog produce
        part = self.part
        part.repairs.clear()
        key = b"k0" if self.name == "c" else None
        new = rb.encode_records([(key, b"new", int(time.time() * 1000), [])])
        try:
            part.append([new])
        except FslogError as e:  # refused: nothing changed
            assert isinstance(e, CorruptRecordError) and f"{path}: position " in str(e), where
            assert open(path, "rb").read() == damaged, where
            assert not harmless and seg == self.active, where
        else:
            got, err, _ = _read(self.topic, True)
            assert set(others) <= set(got) and got[-1][2] == b"new", where
            if part.repairs:  # it cut something: only the damaged last batch, and said so
                assert last and part.repairs[0]["position"] == batch[0], (where, part.repairs)
        finally:
            _close_unsynced(part)
        _restore(self.dir, self.snap, seg, pos)


@pytest.mark.parametrize("which", ["sealed", "active"])
@pytest.mark.parametrize("compact", [False, True], ids=["delete", "compact"])
def test_every_header_bit_and_sampled_record_bytes(tmp_path, compact, which):
    sweep = Sweep(str(tmp_path / "root"), compact)
    n = 0
    for case in sweep.cases(which, random.Random(11)):
        sweep.check(*case)
        n += 1
    assert n >= 2 * (rb.HEADER_SIZE * 8 + RECORD_SAMPLE)  # two batches at least


# Through the real CLI: one flip per field that guards something, in both kinds of
# segment, on both kinds of topic.
FIELDS = {"baseOffset": (7, 0), "batchLength": (11, 2), "crc": (20, 3), "record": (70, 4)}


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_cli_on_a_flip_in_each_field(cli, field):
    byte, bit = FIELDS[field]
    sweeps = []
    for compact in (False, True):
        sweep = Sweep(str(cli.root), compact)
        seg = sweep.active
        batches = _batches(os.path.join(sweep.dir, seg))
        b = batches[len(batches) // 2]  # a batch in the middle of the active segment
        sweeps.append((sweep, seg, b))
    for sweep, seg, b in sweeps:
        path = os.path.join(sweep.dir, seg)
        damaged = sweep.flip(seg, b[0] + byte, bit)
        before = b"".join(r[2] + b"\n" for r in sweep.truth if r[0] < b[2])
        others = {r[2] for r in sweep.truth if not b[2] <= r[0] <= b[3]}
        out = cli("consume", sweep.name, check=1)
        assert out.stdout == before and out.stderr.decode().startswith(f"fslog: {path}: position ")
        skip = cli("consume", sweep.name, "--skip-corrupt")
        assert others <= set(skip.stdout.split(b"\n")) and b"skipped damaged data" in skip.stderr
        assert set(skip.stdout.split(b"\n")[:-1]) <= {r[2] for r in sweep.truth}
        v = cli("verify", sweep.name, check=1)
        assert f"problem: {path}: position " in v.stdout.decode()
        args = ["-K", ":"] if sweep.name == "c" else []
        p = cli("produce", sweep.name, *args, input=b"k0:new\n" if args else b"new\n", check=1)
        assert "will not truncate" in p.stderr.decode()
        assert open(path, "rb").read() == damaged
        _restore(sweep.dir, sweep.snap, seg, b[0] + byte)
    shutil.rmtree(cli.root)
