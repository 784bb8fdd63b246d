"""Property tests (hypothesis) through the whole storage path: producer → partition
(tiny segments, so rolls happen) → reader, with kafka-python judging every segment; and
compaction's invariants over random keyed histories with tombstones."""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_judge import kafka_records

import fslog
from fslog.storage import cleaner
from fslog.storage import files as F

NOW = 1_800_000_000_000
SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

opt_bytes = st.none() | st.binary(max_size=300)
header = st.tuples(st.text(max_size=8), opt_bytes)
record = st.tuples(opt_bytes, opt_bytes, st.lists(header, max_size=2), st.booleans())


def fresh_log(config):
    d = tempfile.mkdtemp(prefix="fslog-prop-")
    log = fslog.Log(os.path.join(d, "root"))
    log.create_topic("t", config=config)
    return d, log


def on_disk(p):
    out = []
    for b in p.segment_bases():
        with open(os.path.join(p.path, F.segment_name(b)), "rb") as f:
            out.extend(kafka_records(f.read()))
    return out


@SETTINGS
@given(st.lists(record, max_size=60))
def test_what_is_sent_is_read_back_exactly(records):
    d, log = fresh_log({"segment.bytes": 1024, "index.interval.bytes": 64, "retention.ms": -1})
    try:
        with log.producer("t", background=False) as p:
            for i, (key, value, headers, flush) in enumerate(records):
                p.send(value, key=key, headers=headers, timestamp=NOW + i)
                if flush:
                    p.flush()
        got = list(log.reader("t"))
        assert [(r.offset, r.key, r.value, tuple(r.headers)) for r in got] == \
            [(i, k, v, tuple(h)) for i, (k, v, h, _f) in enumerate(records)]
        assert [r.timestamp for r in got] == [NOW + i for i in range(len(records))]
        # kafka-python reads the same records from the segments
        assert [(o, k, v) for o, _ts, k, v, _h in on_disk(log.topic("t").partition(0))] == \
            [(i, k, v) for i, (k, v, _h, _f) in enumerate(records)]
        # every offset can be looked up through the indexes
        for start in range(0, len(records), 7):
            first = next(iter(log.reader("t", start=start)), None)
            assert first is not None and first.offset == start
    finally:
        shutil.rmtree(d, ignore_errors=True)


keyed_op = st.tuples(st.integers(0, 6), st.booleans(), st.integers(0, 3), st.booleans())


@SETTINGS
@given(st.lists(keyed_op, min_size=1, max_size=120), st.booleans())
def test_compaction_invariants(ops, expire_tombstones):
    """Whatever the history: after compaction every record left is the original at its
    offset, order is kept, the sealed part holds exactly one record per key (its latest
    there; tombstones only while young), the active segment is untouched, and the log
    verifies and parses with kafka-python."""
    d, log = fresh_log({"segment.bytes": 1024, "index.interval.bytes": 64,
                        "cleanup.policy": "compact", "min.cleanable.dirty.ratio": 1.0,
                        "delete.retention.ms": 1000})
    try:
        original = []
        with log.producer("t", background=False) as p:
            for i, (k, tomb, pad, flush) in enumerate(ops):
                key = b"key-%d" % k
                value = None if tomb else b"v%d-" % i + b"x" * (pad * 40)
                p.send(value, key=key, timestamp=NOW + i)
                original.append((key, value))
                if flush:
                    p.flush()
        part = log.topic("t").partition(0)
        active = part.segment_bases()[-1]
        when = NOW + len(ops) + (10_000 if expire_tombstones else 0)
        cleaner.clean_partition(part, now=when, force_compaction=True)
        after = [(r.offset, r.key, r.value) for r in log.reader("t")]
        assert all(original[o] == (k, v) for o, k, v in after)
        assert [o for o, _k, _v in after] == sorted({o for o, _k, _v in after})
        latest = {}
        for o in range(active):
            latest[original[o][0]] = o
        expected_sealed = sorted(o for o in latest.values()
                                 if not (original[o][1] is None and expire_tombstones))
        assert [o for o, _k, _v in after if o < active] == expected_sealed
        assert [o for o, _k, _v in after if o >= active] == list(range(active, len(ops)))
        assert part.end_offset() == len(ops) and part.start_offset() == 0
        assert [(o, k, v) for o, _ts, k, v, _h in on_disk(part)] == after
        from fslog.storage.verify import verify_topic
        assert verify_topic(log.topic("t"))["problems"] == []
    finally:
        shutil.rmtree(d, ignore_errors=True)
