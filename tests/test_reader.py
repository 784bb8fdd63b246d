"""Readers (fslog/reader.py): the plain-batch fast path gives what the full decoder gives,
from any start offset, up to the stop offsets, mixed with batches of other shapes."""

from __future__ import annotations

import fslog
from fslog.records import batch as rb
from fslog.storage.reader import ConsumerRecord


def _expected(log, topic, start):
    """Every record from ``start``, through the full decoder only."""
    out = []
    part = log.topic(topic).partition(0)
    from fslog.storage.segment import SegmentReader
    for base in part.segment_bases():
        seg = SegmentReader(part.path, base)
        try:
            for _p, h, data in seg.batches(0):
                out.extend(ConsumerRecord(topic, 0, r.offset, r.timestamp, r.key, r.value, r.headers)
                           for r in rb.decode_records(data, 0, h) if r.offset >= start)
        finally:
            seg.close()
    return out


def test_reader_fast_path_matches_full_decoder(tmp_path):
    log = fslog.Log(str(tmp_path))
    with log.producer("t", linger_ms=10_000, background=False) as p:
        p.send_values([b"value-%d" % i for i in range(500)], timestamp=1000)
        p.flush()
        for i in range(50):  # keyed records: not a plain batch
            p.send(b"k%d" % i, key=b"key", timestamp=2000 + i)
        p.flush()
        p.send_values([b"" if i % 7 == 0 else b"\x00\x01" * (i % 5) for i in range(300)],
                      timestamp=3000)
        p.send_values([b"x" * 100] * 200, timestamp=4000)
        p.flush()
    total = 1050
    for start in (0, 1, 31, 499, 500, 549, 550, 777, 850, 1049):
        got = list(log.reader("t", start=start))
        assert got == _expected(log, "t", start), start
        assert [r.offset for r in got] == list(range(start, total))
    batches = log.reader("t").fetch()
    assert all(b.records() == rb.decode_records(b.data, 0, b.header) for b in batches)
    assert sum(b.plain_values() is not None for b in batches) >= 2


def test_reader_stops_at_the_end_seen_at_start(tmp_path):
    log = fslog.Log(str(tmp_path))
    with log.producer("t") as p:
        p.send_values([b"a%d" % i for i in range(100)], timestamp=1)
    r = log.reader("t", start=10)
    with log.producer("t") as p:  # appended after the reader took its stop offsets
        p.send_values([b"b%d" % i for i in range(100)], timestamp=2)
    got = list(r)
    assert [x.value for x in got] == [b"a%d" % i for i in range(10, 100)]
    assert got[0] == ConsumerRecord("t", 0, 10, 1, None, b"a10", ())


# ------------------------------------------------------------ the delivery rule
def _fetched(data, min_offset=0):
    from fslog.storage.reader import FetchedBatch
    return FetchedBatch(0, rb.read_header(data, 0), bytes(data), min_offset, "x.log", 0)


def test_cut_a_dense_batch_at_a_stop_offset_and_a_limit():
    b = _fetched(rb.encode_values([b"v%d" % i for i in range(10)], 1, base_offset=100), 103)
    assert b.cut(None, None) == (7, 110)      # from min_offset 103 to the end
    assert b.cut(105, None) == (2, 105)       # 103, 104
    assert b.cut(None, 3) == (3, 106)
    assert b.cut(105, 3) == (2, 105)
    assert b.cut(200, None) == (7, 110)
    assert b.cut(100, None) == (0, 100)       # wholly past the stop: never commit past it
    assert b.cut(None, 0) == (0, 103)


def test_cut_a_batch_with_gaps():
    recs = [rb.Record(o, 1, b"k%d" % o, b"v", ()) for o in (12, 15, 19)]
    b = _fetched(rb.encode_compacted(recs, 10, 24))   # covers 10..24, records at 12, 15, 19
    got = b.records()
    assert [r.offset for r in got] == [12, 15, 19]
    assert b.cut(None, None, got) == (3, 25)   # the batch's end, past its last record
    assert b.cut(16, None, got) == (2, 16)
    assert b.cut(None, 1, got) == (1, 13)      # after the last record delivered
    assert b.cut(None, 2) == (2, 16)           # records decoded when not given
    assert b.cut(11, None, got) == (0, 11)
    assert b.cut(9, None, got) == (0, 9)
