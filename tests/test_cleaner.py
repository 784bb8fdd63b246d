"""The log cleaner (``cleaner.py``): retention by size and time at segment granularity,
the log start offset, readers behind it, compaction (latest value per key, offsets
preserved, tombstones and delete.retention.ms), the crash-safe swap, and kafka-python
reading what the cleaner wrote. Tiny segments, so every test rolls many times."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_judge import kafka_records

import fslog
from fslog.storage import cleaner
from fslog.storage import files as F
from fslog.storage.reader import PartitionReader

DAY = 86_400_000
NOW = 1_800_000_000_000
TINY = {"segment.bytes": 1024, "index.interval.bytes": 128}


def make(tmp_path, **config):
    log = fslog.Log(str(tmp_path / "root"))
    log.create_topic("t", config=dict(TINY, **config))
    return log


def part(log):
    return log.topic("t").partition(0)


def produce(log, records, flush_every=1):
    """records: (key, value, timestamp) tuples, flushed in small groups (many batches)."""
    with log.producer("t", background=False) as p:
        for i, (k, v, ts) in enumerate(records):
            p.send(v, key=k, timestamp=ts)
            if (i + 1) % flush_every == 0:
                p.flush()


def read(log, start="beginning"):
    r = log.reader("t", start=start)
    try:
        return [(x.offset, x.key, x.value) for x in r]
    finally:
        r.close()


def judge(p):
    """kafka-python reads every segment, CRCs valid; return its records (offset, key, value)."""
    out = []
    for b in p.segment_bases():
        with open(os.path.join(p.path, F.segment_name(b)), "rb") as f:
            out.extend((r[0], r[2], r[3]) for r in kafka_records(f.read()))
    return out


def verify_clean(log):
    from fslog.storage.verify import verify_topic
    rep = verify_topic(log.topic("t"))
    assert rep["problems"] == [], rep["problems"]


# ------------------------------------------------------------------ retention

def test_size_retention_deletes_oldest_whole_segments(tmp_path):
    log = make(tmp_path, **{"retention.bytes": 3000, "retention.ms": -1})
    values = [b"v%04d" % i + b"x" * 60 for i in range(300)]
    produce(log, [(None, v, NOW) for v in values], flush_every=5)
    p = part(log)
    # retention ran on every roll already: the partition stays bounded without `clean`
    sizes = [os.path.getsize(os.path.join(p.path, F.segment_name(b))) for b in p.segment_bases()]
    assert sum(sizes) - sizes[0] < 3000
    res = cleaner.clean_partition(p, now=NOW)
    assert res["segments_deleted"] == []  # nothing more to do
    start = p.start_offset()
    assert start > 0 and start == p.segment_bases()[0]
    got = read(log)
    assert [o for o, _k, _v in got] == list(range(start, 300))  # a suffix, offsets unchanged
    assert [v for _o, _k, v in got] == values[start:]
    assert p.end_offset() == 300
    verify_clean(log)


def test_size_retention_by_clean_after_the_fact(tmp_path):
    log = make(tmp_path, **{"retention.ms": -1})
    produce(log, [(None, b"y" * 80, NOW) for _ in range(200)], flush_every=4)
    p = part(log)
    n_before = len(p.segment_bases())
    assert n_before > 5
    log.topic("t").set_config(dict(TINY, **{"retention.bytes": 2500, "retention.ms": -1}))
    res = cleaner.clean_partition(p, now=NOW)
    deleted = res["segments_deleted"]
    assert deleted and all(d["reason"] == "retention.bytes" for d in deleted)
    assert [d["base_offset"] for d in deleted] == sorted(d["base_offset"] for d in deleted)
    assert res["start_offset"] == deleted[-1]["end_offset"] == p.start_offset()
    total = p.size_bytes()
    first = os.path.getsize(os.path.join(p.path, F.segment_name(p.segment_bases()[0])))
    assert total >= 2500 > total - first  # deleting one more would go below retention.bytes


def test_time_retention_uses_the_newest_record_of_each_segment(tmp_path):
    log = make(tmp_path, **{"retention.ms": 7 * DAY})
    old = [(None, b"old-%03d" % i + b"o" * 50, NOW - 30 * DAY + i) for i in range(60)]
    new = [(None, b"new-%03d" % i + b"n" * 50, NOW - DAY + i) for i in range(60)]
    # written with retention off, so that rolls do not clean yet
    log.topic("t").set_config(dict(TINY, **{"retention.ms": -1}))
    produce(log, old + new, flush_every=3)
    log.topic("t").set_config(dict(TINY, **{"retention.ms": 7 * DAY}))
    p = part(log)
    res = cleaner.clean_partition(p, now=NOW)
    assert res["segments_deleted"] and all(d["reason"] == "retention.ms" for d in res["segments_deleted"])
    got = [v for _o, _k, v in read(log)]
    # every new record survives; old ones only in a segment that also holds new ones
    assert got[-60:] == [v for _k, v, _t in new]
    assert all(v.startswith(b"old-") for v in got[:-60])
    assert len(got) - 60 < 20


def test_active_segment_is_never_deleted(tmp_path):
    log = make(tmp_path, **{"retention.ms": 1000, "retention.bytes": 0})
    produce(log, [(None, b"z" * 100, NOW - 10 * DAY) for _ in range(50)], flush_every=2)
    p = part(log)
    cleaner.clean_partition(p, now=NOW)
    bases = p.segment_bases()
    assert len(bases) == 1  # only the active one is left, whatever its age and size
    assert p.end_offset() == 50
    assert read(log) == [(o, None, b"z" * 100) for o in range(bases[0], 50)]


def test_reader_behind_the_log_start_continues_from_it(tmp_path):
    log = make(tmp_path, **{"retention.ms": -1})
    produce(log, [(None, b"r%03d" % i + b"." * 70, NOW) for i in range(200)], flush_every=4)
    p = part(log)
    log.topic("t").set_config(dict(TINY, **{"retention.bytes": 2000, "retention.ms": -1}))
    cleaner.clean_partition(p, now=NOW)
    start = p.start_offset()
    assert start > 0
    r = PartitionReader(p, 3)
    assert r.next_offset == start and r.retention_skips == [(3, start)]
    got = [rec.offset for b in r.fetch(1 << 30) for rec in b.records()]
    assert got == list(range(start, 200))
    r.close()


def test_reader_with_a_deleted_segment_mapped_reads_on(tmp_path):
    log = make(tmp_path, **{"retention.ms": -1})
    values = [b"m%03d" % i + b"." * 70 for i in range(200)]
    produce(log, [(None, v, NOW) for v in values], flush_every=4)
    p = part(log)
    r = PartitionReader(p, 0)
    first = r.fetch(200)  # the first segment is open and mapped now
    assert first
    log.topic("t").set_config(dict(TINY, **{"retention.bytes": 1500, "retention.ms": -1}))
    res = cleaner.clean_partition(p, now=NOW)
    assert res["segments_deleted"][0]["base_offset"] == 0
    got = [rec.offset for b in first for rec in b.records()]
    while True:
        batches = r.fetch(1 << 20)
        if not batches:
            break
        got.extend(rec.offset for b in batches for rec in b.records())
    r.close()
    # the mapped segment is read to its end; then the reader goes on from the log start
    n0 = res["segments_deleted"][0]["end_offset"]
    assert got[:n0] == list(range(n0))
    assert got[n0:] == list(range(max(n0, p.start_offset()), 200))


# ------------------------------------------------------------------ compaction

def keyed(n_keys, rounds, ts=NOW):
    out = []
    for r in range(rounds):
        for k in range(n_keys):
            out.append((b"k%02d" % k, b"k%02d=v%d" % (k, r) + b"-" * 30, ts))
    return out


def test_compaction_keeps_latest_value_per_key_and_offsets(tmp_path):
    log = make(tmp_path, **{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": 1.0})
    recs = keyed(10, 12)
    produce(log, recs, flush_every=3)
    p = part(log)
    before = read(log)
    assert len(before) == 120
    active = p.segment_bases()[-1]
    res = cleaner.clean_partition(p, now=NOW, force_compaction=True)
    c = res["compaction"]
    assert c["ran"] and c["records_removed"] > 0 and c["bytes_after"] < c["bytes_before"]
    after = read(log)
    by_offset = {o: (k, v) for o, k, v in before}
    # every record left is the original at its offset, in order
    assert all(by_offset[o] == (k, v) for o, k, v in after)
    assert [o for o, _k, _v in after] == sorted(o for o, _k, _v in after)
    sealed = [(o, k) for o, k, _v in after if o < active]
    latest_sealed = {}
    for o, k, _v in before:
        if o < active:
            latest_sealed[k] = o
    assert sorted(sealed) == sorted((o, k) for k, o in latest_sealed.items())
    assert [x for x in after if x[0] >= active] == [x for x in before if x[0] >= active]
    assert p.end_offset() == 120 and p.start_offset() == 0
    assert judge(p) == after  # kafka-python agrees, CRCs valid
    verify_clean(log)
    # a reader asking for a removed offset gets the next existing record
    removed = next(o for o in range(120) if o not in {x[0] for x in after})
    nxt = min(o for o, _k, _v in after if o > removed)
    assert read(log, start=removed)[0][0] == nxt
    # compacting again changes nothing
    res2 = cleaner.clean_partition(p, now=NOW, force_compaction=True)
    assert res2["compaction"]["records_removed"] == 0 and read(log) == after


def test_tombstones_delete_keys_and_go_after_delete_retention(tmp_path):
    log = make(tmp_path, **{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": 0,
                            "delete.retention.ms": DAY})
    recs = keyed(6, 5, ts=NOW - 2 * DAY)
    recs += [(b"k01", None, NOW - 2 * DAY), (b"k03", None, NOW - 1000)]
    recs += keyed(2, 8, ts=NOW)  # more rounds of k00, k01 ... wait: k01 rewritten after its tombstone
    produce(log, recs, flush_every=2)
    p = part(log)
    active = p.segment_bases()[-1]
    cleaner.clean_partition(p, now=NOW, force_compaction=True)
    after = read(log)
    sealed = {k: v for o, k, v in after if o < active}
    # k03's tombstone is younger than delete.retention.ms: kept (deletes the key for readers)
    assert b"k03" in sealed and sealed[b"k03"] is None
    assert not any(k == b"k03" and v is not None for _o, k, v in after)
    # a week later it is gone, and so is every older record of k03
    cleaner.clean_partition(p, now=NOW + 7 * DAY, force_compaction=True)
    later = read(log)
    assert not any(k == b"k03" for o, k, _v in later if o < active)
    assert judge(p) == later
    verify_clean(log)


def test_keyless_records_are_refused_by_a_compacted_topic(tmp_path):
    log = make(tmp_path, **{"cleanup.policy": "compact"})
    with log.producer("t", background=False) as p:
        with pytest.raises(fslog.InvalidInputError, match="needs a key"):
            p.send(b"no key")
        with pytest.raises(fslog.InvalidInputError, match="needs a key"):
            p.send_values([b"a", b"b"])
        p.send(b"ok", key=b"k")
    assert read(log) == [(0, b"k", b"ok")]


def test_compact_delete_applies_both(tmp_path):
    log = make(tmp_path, **{"cleanup.policy": "compact,delete", "retention.ms": -1,
                            "min.cleanable.dirty.ratio": 1.0})
    produce(log, keyed(8, 10), flush_every=2)
    p = part(log)
    log.topic("t").set_config(dict(TINY, **{"cleanup.policy": "compact,delete",
                                            "retention.bytes": 1500, "retention.ms": -1}))
    res = cleaner.clean_partition(p, now=NOW, force_compaction=True)
    assert res["segments_deleted"] and res["compaction"]["ran"]
    assert p.start_offset() > 0
    verify_clean(log)


def test_dirty_ratio_decides_when_compaction_runs(tmp_path, monkeypatch):
    # the compactions in this process: a background one that the producer's close left
    # waiting for the cleaner lock could otherwise run between the ratio read below and
    # the clean that is checked against it (it did, at load 3)
    monkeypatch.setenv("FSLOG_CLEANER", "inline")
    log = make(tmp_path, **{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": 0.5})
    p = part(log)
    produce(log, keyed(5, 10), flush_every=2)
    # rolls compacted already once the dirty part reached half of the sealed bytes
    assert cleaner.read_checkpoint(p) > 0
    ratio = cleaner.dirty_ratio(p)
    assert 0 <= ratio < 1
    d = log.topic("t").describe()
    assert d["partitions"][0]["dirty_ratio"] == round(ratio, 4)
    res = cleaner.clean_partition(p, now=NOW)
    assert res["compaction"]["ran"] == (ratio > 0.5)


def _produce_until_rolls(p, producer, key_base, rolls):
    """Send keyed records through an open producer until the partition rolled ``rolls``
    more times."""
    want = len(p.segment_bases()) + rolls
    i = 0
    while len(p.segment_bases()) < want:
        producer.send(b"v%d" % i + b"-" * 40, key=b"k%02d" % ((key_base + i) % 7), timestamp=NOW)
        producer.flush()
        i += 1


def test_rolls_within_the_backoff_put_compaction_off_to_the_close(tmp_path, monkeypatch):
    # log.cleaner.backoff.ms: the first due roll compacts; later rolls within the backoff
    # of that compaction leave the dirty part (a burst costs one compaction, not one a
    # roll), and the producer's close compacts what it put off
    monkeypatch.setenv("FSLOG_CLEANER", "inline")  # (the compactions in this process)
    log = make(tmp_path, **{"cleanup.policy": "compact", "log.cleaner.backoff.ms": 600_000})
    with log.producer("t", background=False) as producer:
        p = producer.topic.partition(0)
        _produce_until_rolls(p, producer, 0, 2)
        first = cleaner.read_checkpoint(p)
        assert first > 0  # the first roll that found compaction due ran it
        _produce_until_rolls(p, producer, 3, 6)
        assert cleaner.read_checkpoint(p) == first and p.clean_deferred
        assert cleaner.dirty_ratio(p) > 0.5
        active = p.segment_bases()[-1]
    assert cleaner.read_checkpoint(part(log)) == active  # compacted at the close
    assert cleaner.dirty_ratio(part(log)) == 0
    sealed = [k for o, k, _v in read(log) if o < active]
    assert sealed and len(sealed) == len(set(sealed))  # each key once in the sealed part
    verify_clean(log)


def test_a_close_while_another_clean_runs_leaves_a_compaction_waiting_for_it(tmp_path):
    # Rolls while another process cleans (a compaction an earlier roll started, say)
    # leave what they sealed; the producer's close then starts a compaction that waits
    # for that clean to end, so a burst's tail is compacted all the same
    import time
    log = make(tmp_path, **{"cleanup.policy": "compact"})
    busy = cleaner.clean_lock(part(log))
    busy.acquire()
    try:
        with log.producer("t", background=False) as producer:
            p = producer.topic.partition(0)
            _produce_until_rolls(p, producer, 0, 4)
            assert p.clean_deferred and cleaner.read_checkpoint(p) == 0
            active = p.segment_bases()[-1]
        assert cleaner.read_checkpoint(p) == 0  # (nothing can run while the lock is held)
    finally:
        busy.release()
    p = part(log)
    for _ in range(1200):  # bounded (a minute): the waiting compaction runs once it may
        if cleaner.read_checkpoint(p) == active:
            break
        time.sleep(0.05)
    cleaner.wait_for_background(p)
    assert cleaner.read_checkpoint(p) == active and cleaner.dirty_ratio(p) == 0
    verify_clean(log)


def test_with_no_backoff_every_due_roll_compacts(tmp_path, monkeypatch):
    monkeypatch.setenv("FSLOG_CLEANER", "inline")
    log = make(tmp_path, **{"cleanup.policy": "compact", "log.cleaner.backoff.ms": 0})
    with log.producer("t", background=False) as producer:
        p = producer.topic.partition(0)
        seen = set()
        for _ in range(4):
            _produce_until_rolls(p, producer, 0, 2)
            seen.add(cleaner.read_checkpoint(p))
            assert not p.clean_deferred
        assert len(seen) == 4  # each round's rolls compacted again


def test_a_compaction_after_the_checkpoint_removes_older_records_of_the_clean_part(tmp_path):
    # The offset map covers the dirty part only (from the checkpoint on); the clean part
    # is filtered against it: a key updated after the checkpoint loses its older record
    # there too
    log = make(tmp_path, **{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": 1.0})
    produce(log, keyed(5, 3), flush_every=2)
    p = part(log)
    cleaner.clean_partition(p, now=NOW, force_compaction=True)
    checkpoint = cleaner.read_checkpoint(p)
    clean_part = [r for r in read(log) if r[0] < checkpoint]
    assert any(k == b"k01" for _o, k, _v in clean_part)
    filler = [(b"x%02d" % i, b"x" * 40, NOW) for i in range(40)]  # (other keys: rolls)
    produce(log, [(b"k01", b"k01=new" + b"-" * 30, NOW)] * 2 + filler, flush_every=1)
    assert cleaner.read_checkpoint(p) == checkpoint  # (no compaction in between: ratio 1.0)
    res = cleaner.clean_partition(p, now=NOW, force_compaction=True)
    assert res["compaction"]["ran"]
    after = read(log)
    active = p.segment_bases()[-1]
    sealed_k01 = [(o, v) for o, k, v in after if k == b"k01" and o < active]
    assert len(sealed_k01) <= 1 and all(v.startswith(b"k01=new") for _o, v in sealed_k01)
    assert not [o for o, k, _v in after if k == b"k01" and o < checkpoint]
    verify_clean(log)


# ------------------------------------------------------------------ crash-safe swap

def _swap_steps(tmp_path, monkeypatch, fail_at):
    """Compact, making the fail_at-th rename/unlink of the swap raise (a crash there);
    return (log, records before, records expected after)."""
    log = make(tmp_path, **{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": 1.0,
                            "segment.bytes": 1024})
    produce(log, keyed(4, 20), flush_every=2)
    p = part(log)
    before = read(log)
    calls = {"n": 0}
    real_replace, real_unlink = os.replace, os.unlink

    def counting(real):
        def f(*a, **k):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise KeyboardInterrupt("crash")
            return real(*a, **k)
        return f

    monkeypatch.setattr(cleaner.os, "replace", counting(real_replace))
    monkeypatch.setattr(cleaner.os, "unlink", counting(real_unlink))
    crashed = False
    try:
        cleaner.clean_partition(p, now=NOW, force_compaction=True)
    except KeyboardInterrupt:
        crashed = True
    monkeypatch.setattr(cleaner.os, "replace", real_replace)
    monkeypatch.setattr(cleaner.os, "unlink", real_unlink)
    return log, before, crashed


@pytest.mark.parametrize("fail_at", range(1, 48, 2))
def test_a_crash_at_any_step_of_the_swap_leaves_old_or_new(tmp_path, monkeypatch, fail_at):
    log, before, crashed = _swap_steps(tmp_path, monkeypatch, fail_at)
    p = part(log)
    # whatever a reader sees meanwhile is the log (old or new records), never a mix or a loss
    mid = read(log)
    by_offset = {o: (k, v) for o, k, v in before}
    assert all(by_offset[o] == (k, v) for o, k, v in mid)
    assert len({o for o, _k, _v in mid}) == len(mid)
    latest = {}
    for o, k, _v in before:
        latest[k] = o
    assert set(latest.values()) <= {o for o, _k, _v in mid}
    # the next clean (or verify --repair) finishes or rolls back, and the log is sound
    cleaner.clean_partition(p, now=NOW, force_compaction=True)
    leftovers = [n for n in os.listdir(p.path)
                 if n.endswith((F.CLEANED_SUFFIX, F.CLEAN_MARKER_SUFFIX)) or ".tmp." in n]
    assert leftovers == []
    final = read(log)
    assert all(by_offset[o] == (k, v) for o, k, v in final)
    assert judge(p) == final
    verify_clean(log)
    if not crashed:
        assert final == mid


def test_records_without_timestamps_age_by_the_segment_file(tmp_path):
    """Records with timestamp -1 (no time given) are not "infinitely old": retention goes
    by the time the segment file was last written, as Kafka does."""
    log = make(tmp_path, **{"retention.ms": 3_600_000})
    produce(log, [(None, b"t" * 60, -1) for _ in range(100)], flush_every=2)
    p = part(log)
    assert p.start_offset() == 0 and len(p.segment_bases()) > 3
    res = cleaner.clean_partition(p)
    assert res["segments_deleted"] == []
    # an hour and more later (by the files' clocks) they go
    old = os.path.getmtime(os.path.join(p.path, F.segment_name(0))) - 7200
    for b in p.segment_bases()[:-1]:
        os.utime(os.path.join(p.path, F.segment_name(b)), (old, old))
    res = cleaner.clean_partition(p)
    assert res["segments_deleted"]
    assert all(d["reason"] == "retention.ms" for d in res["segments_deleted"])
    assert len(p.segment_bases()) == 1  # all but the active one


def test_small_sealed_segments_are_merged(tmp_path):
    log = make(tmp_path, **{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": 1.0})
    produce(log, keyed(3, 40), flush_every=3)  # three keys: each segment shrinks to a few records
    p = part(log)
    n = len(p.segment_bases())
    assert n > 6
    cleaner.clean_partition(p, now=NOW, force_compaction=True)
    after_first = read(log)
    # the first pass groups by the segments' sizes before cleaning; the second merges the
    # small results, though no record goes
    res = cleaner.clean_partition(p, now=NOW, force_compaction=True)
    assert res["compaction"]["records_removed"] == 0
    assert len(p.segment_bases()) <= 3 < n
    assert read(log) == after_first
    assert judge(p) == after_first
    verify_clean(log)
    # and once merged, a further pass leaves the files alone
    names = sorted(os.listdir(p.path))
    inode = os.stat(os.path.join(p.path, F.segment_name(0))).st_ino
    cleaner.clean_partition(p, now=NOW, force_compaction=True)
    assert os.stat(os.path.join(p.path, F.segment_name(0))).st_ino == inode
    assert sorted(os.listdir(p.path)) == names


def test_log_clean_is_the_library_entry_point(tmp_path):
    log = fslog.Log(str(tmp_path / "root"))
    log.create_topic("t", partitions=2, config=dict(TINY, **{"retention.ms": -1}))
    produce(log, [(b"k%d" % (i % 7), b"v" * 80, NOW) for i in range(200)], flush_every=4)
    log.topic("t").set_config(dict(TINY, **{"retention.bytes": 1500, "retention.ms": -1}))
    res = log.clean("t")
    assert res.topics == ["t"] and res.errors == []
    assert [r.partition for r in res.partitions] == [0, 1]
    assert all(r.segments_deleted for r in res.partitions)
    assert all(r.start_offset == log.topic("t").partition(r.partition).start_offset()
               for r in res.partitions)
    assert res.as_json()["segments_deleted"] == sum(len(r.segments_deleted) for r in res.partitions)
    rep = log.verify("t")
    assert rep.ok and rep.topics[0].topic == "t" and rep.topics[0].records > 0


# ------------------------------------------------------------------ bounded offset map

def _latest_per_key(records):
    out = {}
    for off, k, v in records:
        out[k] = (off, v)
    return out


@pytest.fixture
def helpers(monkeypatch):
    """Map builds split with a forked helper however small the partition; returns the
    list of helpers started (their split points)."""
    started: list[int] = []
    start = cleaner._Helper.start.__func__  # type: ignore[attr-defined]

    def counting(cls, *a):
        h = start(cls, *a)
        if h is not None:
            started.append(h.split)
        return h
    monkeypatch.setattr(cleaner, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(cleaner, "HELPER_WITH_THREADS", True)  # (pytest-xdist has threads)
    monkeypatch.setattr(cleaner._Helper, "start", classmethod(counting))
    return started


@pytest.mark.parametrize("how", ["alone", "helper", "helper fails"])
def test_a_small_dedupe_buffer_takes_several_passes_to_the_same_result(tmp_path, request, how):
    """The same records are left whatever the buffer (one pass or many) and whether a
    helper process scanned half of each map's segments (or failed, and this process
    scanned them itself)."""
    if how != "alone":
        started = request.getfixturevalue("helpers")
    if how == "helper fails":
        request.getfixturevalue("monkeypatch").setattr(
            cleaner._Helper, "_run", classmethod(lambda cls, *a: 1))
    results = []
    for buf in (1 << 16, 128 << 20):
        log = fslog.Log(str(tmp_path / f"root{buf}"))
        log.create_topic("t", config={"cleanup.policy": "compact", "segment.bytes": 64 << 10,
                                      "min.cleanable.dirty.ratio": 1.0,
                                      "log.cleaner.dedupe.buffer.size": buf})
        with log.producer("t", background=False) as p:
            for r in range(3):  # keyed batches of the producer's shape, and others
                keys = [b"key-%05d" % i for i in range(r * 400, r * 400 + 2000)]
                p.send_keyed(keys, [k + b"=%d" % r for k in keys], timestamp=NOW)
                p.flush()
                for i in range(0, 2000, 97):
                    p.send(None if i % 2 else b"general", key=b"key-%05d" % i, timestamp=NOW)
                p.flush()
        before = read(log)
        res = cleaner.clean_partition(part(log), now=NOW, force_compaction=True)["compaction"]
        after = read(log)
        active = part(log).segment_bases()[-1]
        sealed = [k for o, k, _v in after if o < active]
        assert len(sealed) == len(set(sealed))  # one record per key in the sealed part
        assert _latest_per_key(after) == _latest_per_key(before)  # no key lost or revived
        assert set(after) <= set(before)
        verify_clean(log)
        results.append((res["passes"], after))
    (passes_small, after_small), (passes_big, after_big) = results
    assert passes_small > 2 and passes_big == 1
    assert after_small == after_big
    if how != "alone":
        assert len(started) >= 2  # (helpers did start: in every pass over two segments or more)


# ------------------------------------------------------------------ against a reference model

_KEYS = [b"a", b"bb", b"key-%d" % 7, b"\x00\x02", b"u-00000042"]
_op = st.one_of(
    # a keyed batch of the producer's shape (the cleaner's fast path)
    st.tuples(st.just("keyed"), st.lists(st.tuples(st.sampled_from(_KEYS),
                                                   st.binary(max_size=30)), min_size=1, max_size=40),
              st.booleans()),
    # records of other shapes: a tombstone, headers (the general path)
    st.tuples(st.just("one"), st.tuples(st.sampled_from(_KEYS),
                                        st.none() | st.binary(max_size=30)), st.booleans()),
    st.tuples(st.just("flush"), st.just(None), st.just(False)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_op, min_size=1, max_size=25), st.sampled_from([None, 30_000]),
       st.sampled_from([1024, 4096]), st.booleans())
def test_compaction_is_the_reference_model(tmp_path_factory, ops, entry_bytes, segment, helper):
    """Whatever mix of batch shapes, tombstones (old and young), segment sizes and dedupe
    buffers (several passes): the records left are exactly those of a simple model — of
    each key in the sealed segments its latest record, minus tombstones older than
    delete.retention.ms — at their offsets; kafka-python reads the segments, verify finds
    nothing, seeks land on the next record kept, and a second clean changes nothing."""
    log = fslog.Log(str(tmp_path_factory.mktemp("model") / "root"))
    log.create_topic("t", config={"cleanup.policy": "compact", "segment.bytes": segment,
                                  "index.interval.bytes": 64, "min.cleanable.dirty.ratio": 1.0,
                                  "delete.retention.ms": DAY,
                                  "log.cleaner.dedupe.buffer.size": 1 << 16})
    ts_of: dict[int, int] = {}
    off = 0
    with log.producer("t", background=False) as p:
        for kind, arg, old in ops:
            ts = NOW - 2 * DAY if old else NOW
            if kind == "keyed":
                p.send_keyed([k for k, _ in arg], [v for _, v in arg], timestamp=ts)
                n = len(arg)
            elif kind == "one":
                k, v = arg
                p.send(v, key=k, headers=[("h", b"x")] if v is not None and old else None,
                       timestamp=ts)
                n = 1
            else:
                p.flush()
                continue
            for i in range(n):
                ts_of[off + i] = ts
            off += n
        p.flush()
    if not off:
        return
    pt = part(log)
    before = read(log)
    assert [o for o, _k, _v in before] == list(range(off))
    active = pt.segment_bases()[-1]
    saved = cleaner.MAP_ENTRY_BYTES, cleaner.PARALLEL_MIN_BYTES, cleaner.HELPER_WITH_THREADS
    if entry_bytes:  # a map that holds two or three keys: a pass per few keys
        cleaner.MAP_ENTRY_BYTES = entry_bytes
    if helper:  # each map's second half scanned by a forked helper
        cleaner.PARALLEL_MIN_BYTES, cleaner.HELPER_WITH_THREADS = 0, True
    try:
        cleaner.clean_partition(pt, now=NOW, force_compaction=True)
    finally:
        cleaner.MAP_ENTRY_BYTES, cleaner.PARALLEL_MIN_BYTES, cleaner.HELPER_WITH_THREADS = saved
    latest = {}
    for o, k, _v in before:
        if o < active:
            latest[k] = o
    want = [(o, k, v) for o, k, v in before
            if o >= active or (latest[k] == o and not (v is None and ts_of[o] < NOW - DAY))]
    after = read(log)
    assert after == want
    assert judge(pt) == after
    verify_clean(log)
    kept = [o for o, _k, _v in after]
    for o in range(0, off, 7):
        nxt = [x for x in kept if x >= o]
        assert [x[0] for x in read(log, start=o)[:1]] == nxt[:1]
    cleaner.clean_partition(pt, now=NOW, force_compaction=True)
    assert read(log) == after


def test_a_background_cleaner_killed_by_a_signal_is_recorded(tmp_path):
    import signal
    import subprocess
    import sys
    log = make(tmp_path, **{"cleanup.policy": "compact"})
    produce(log, keyed(3, 2))
    p = part(log)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    cleaner._BACKGROUND.append((child, p.path))
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    cleaner._reap()  # (what the next roll of the producer that started it does)
    f = cleaner.background_failure(p)
    assert f is not None and f"pid {child.pid}) was killed by signal 9" in f["error"]
    assert "fslog verify t" in cleaner.describe_failure("t", 0, f)
    cleaner.clean_partition(p, now=NOW, force_compaction=True)  # a compaction that succeeds
    assert cleaner.background_failure(p) is None


def test_a_forked_background_compaction_keeps_only_the_cleaner_lock(tmp_path, monkeypatch):
    # The forked child (what a single-threaded producer starts at a roll) is detached and
    # holds none of the producer's descriptors but the cleaner lock: not its stdin/stdout
    # pipes (a pipeline's reader would wait for the compaction), not its lock files (a
    # producer killed by -9 would keep its append lock held while the compaction runs).
    import json
    log = make(tmp_path, **{"cleanup.policy": "compact"})
    produce(log, keyed(3, 2))
    p = part(log)
    report = str(tmp_path / "child.json")
    r, w = os.pipe()  # (a descriptor of the "producer" that the child must not keep)

    def fake_background(root, topic, number, lock_fd, say=False):
        fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
        doc = {"fds": fds, "lock_fd": lock_fd, "session": os.getsid(0) == os.getpid(),
               "std": [os.readlink(f"/proc/self/fd/{i}") for i in (0, 1, 2)],
               "lock_held": False}
        import fcntl
        probe = os.open(os.path.join(p.path, F.CLEANER_LOCK_FILE), os.O_RDONLY)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            doc["lock_held"] = True  # (by the descriptor inherited: another open file)
        os.close(probe)
        fd = os.open(report, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, json.dumps(doc).encode())
        os.close(fd)
        os.close(lock_fd)
        return 0

    monkeypatch.setattr(cleaner, "_background", fake_background)
    from fslog.storage.locks import ProcessLock
    plock = ProcessLock(os.path.join(p.path, F.CLEANER_LOCK_FILE))
    assert plock.try_acquire()
    child = cleaner._fork_compaction(p, plock.fd)
    assert child is not None
    os.close(plock.fd)
    plock.fd = -1
    os.close(w)
    for _ in range(3000):  # (bounded: the child exits at once)
        if child.poll() is not None:
            break
        import time
        time.sleep(0.01)
    assert child.returncode == 0
    os.close(r)
    with open(report) as f:
        doc = json.load(f)
    others = set(doc["fds"]) - {0, 1, 2, doc["lock_fd"]}
    assert len(others) == 1 and doc["lock_fd"] in doc["fds"]  # (the other: the listing's own)
    assert doc["std"] == [os.devnull] * 3 and doc["session"] and doc["lock_held"]
    with cleaner.clean_lock(p):  # released with the child's descriptor
        pass
