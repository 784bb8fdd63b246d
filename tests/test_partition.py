"""Partitions and topics (fslog/partition.py, topic.py, log.py, reader.py, config.py, files.py):
reopening, start positions, names and configuration."""

from __future__ import annotations

import os

import pytest
from kafka_judge import kafka_records

import fslog
from fslog.records.partitioner import partition_for_key
from fslog.storage import files
from fslog.storage.reader import PartitionReader, resolve_start

# retention.ms=-1: these tests write records with fixed timestamps in the past (T0),
# which time retention would otherwise delete when a segment rolls
TINY = {"segment.bytes": 2048, "index.interval.bytes": 256, "retention.ms": -1}
T0 = 1_700_000_000_000


def make_log(tmp_path, name="t", partitions=1, config=None):
    log = fslog.Log(str(tmp_path / "root"))
    log.create_topic(name, partitions=partitions, config=dict(TINY, **(config or {})))
    return log


def read_all(log, name="t", partitions=(0,), start="beginning"):
    r = log.reader(name, partitions=list(partitions), start=start)
    try:
        return [(c.partition, c.offset, c.timestamp, c.key, c.value) for c in r]
    finally:
        r.close()


def produce(log, values, name="t", partition=0, timestamps=None, keys=None):
    with log.producer(name, background=False) as p:
        for i, v in enumerate(values):
            p.send(v, key=None if keys is None else keys[i], partition=partition,
                   timestamp=None if timestamps is None else timestamps[i])
            if i % 5 == 4:
                p.drain()  # append (no fsync: durability is not what is tested)


# ------------------------------------------------------------------ reopening

def test_reopen_root_continues_offsets(tmp_path):
    log = make_log(tmp_path)
    produce(log, [f"a{i}".encode() * 20 for i in range(100)])
    root = log.root
    del log
    log2 = fslog.Log(root)
    assert log2.topics() == ["t"]
    t = log2.topic("t")
    assert t.config.segment_bytes == 2048 and t.config.index_interval_bytes == 256
    assert t.partition(0).end_offset() == 100
    with log2.producer("t", background=False) as p:
        p.send_values([f"b{i}".encode() for i in range(50)], partition=0)
    log3 = fslog.Log(root)
    got = read_all(log3)
    assert [o for _p, o, *_ in got] == list(range(150))
    assert [v for *_, v in got] == [f"a{i}".encode() * 20 for i in range(100)] + \
        [f"b{i}".encode() for i in range(50)]
    # every segment file is still whole Kafka format
    d = files.partition_dir(root, "t", 0)
    recs = []
    for f in sorted(os.listdir(d)):
        if f.endswith(".log"):
            recs.extend(kafka_records(open(os.path.join(d, f), "rb").read()))
    assert [r[0] for r in recs] == list(range(150))


def test_two_producers_in_one_process_share_offsets(tmp_path):
    log = make_log(tmp_path)
    a = log.producer("t", background=False)
    b = fslog.Log(log.root).producer("t", background=False)
    for i in range(60):
        (a if i % 2 else b).send(f"{i}".encode(), partition=0)
        (a if i % 2 else b).drain()
    a.close()
    b.close()
    got = read_all(log)
    assert [o for _p, o, *_ in got] == list(range(60))
    assert sorted(int(v) for *_, v in got) == list(range(60))


def test_reader_follows_new_records_across_rolls(tmp_path):
    log = make_log(tmp_path)
    part = log.topic("t").partition(0)
    r = PartitionReader(part, 0)
    assert r.fetch() == []  # no segment yet
    seen = []
    for round_ in range(5):
        produce(log, [f"{round_}-{i}".encode() * 30 for i in range(25)])
        for b in r.fetch():
            seen.extend(rec.offset for rec in b.records())
    r.close()
    assert seen == list(range(125))
    assert len(part.segment_bases()) > 3


def test_keyed_records_go_where_kafka_puts_them(tmp_path):
    log = make_log(tmp_path, partitions=5)
    keys = [f"user-{i}".encode() for i in range(200)]
    with log.producer("t", background=False) as p:
        for k in keys:
            assert p.send(b"v:" + k, key=k) == partition_for_key(k, 5)
    got = read_all(log, partitions=range(5))
    assert len(got) == 200
    for part, _off, _ts, key, value in got:
        assert part == partition_for_key(key, 5)
        assert value == b"v:" + key


# ------------------------------------------------------------------ start positions

@pytest.fixture
def log100(tmp_path):
    log = make_log(tmp_path)
    produce(log, [f"r{i}".encode() * 10 for i in range(100)],
            timestamps=[T0 + 10 * i for i in range(100)])
    assert len(log.topic("t").partition(0).segment_bases()) > 2
    return log


def offsets(log, start):
    return [o for _p, o, *_ in read_all(log, start=start)]


def test_start_specs(log100):
    assert offsets(log100, "beginning") == list(range(100))
    assert offsets(log100, "earliest") == list(range(100))
    assert offsets(log100, "end") == []
    assert offsets(log100, "latest") == []
    assert offsets(log100, 0) == list(range(100))
    assert offsets(log100, 42) == list(range(42, 100))
    assert offsets(log100, 100) == []
    assert offsets(log100, -1) == [99]
    assert offsets(log100, -10) == list(range(90, 100))
    assert offsets(log100, -1000) == list(range(100))
    assert offsets(log100, ("last", 1)) == [99]
    assert offsets(log100, ("last", 7)) == list(range(93, 100))
    assert offsets(log100, ("last", 0)) == []
    assert offsets(log100, ("last", 500)) == list(range(100))
    part = log100.topic("t").partition(0)
    assert resolve_start(part, "end") == 100
    assert resolve_start(part, None) == 0


def test_start_per_partition_dict(tmp_path):
    log = make_log(tmp_path, partitions=2)
    produce(log, [b"a"] * 10, partition=0)
    produce(log, [b"b"] * 10, partition=1)
    got = read_all(log, partitions=(0, 1), start={0: 8, 1: ("last", 1)})
    assert sorted((p, o) for p, o, *_ in got) == [(0, 8), (0, 9), (1, 9)]


def test_offset_past_end_is_out_of_range(log100):
    with pytest.raises(fslog.OffsetOutOfRangeError, match="101"):
        log100.reader("t", partitions=[0], start=101)
    with pytest.raises(fslog.OffsetOutOfRangeError):
        log100.reader("t", partitions=[0], start=10**12)


def test_offset_on_empty_partition(tmp_path):
    log = make_log(tmp_path)
    assert offsets(log, "beginning") == []
    assert offsets(log, 0) == []
    assert offsets(log, -5) == []
    assert offsets(log, ("time", T0)) == []
    with pytest.raises(fslog.OffsetOutOfRangeError):
        log.reader("t", partitions=[0], start=1)


@pytest.mark.parametrize("ts,first", [
    (0, 0), (T0, 0), (T0 + 1, 1), (T0 + 9, 1), (T0 + 10, 1), (T0 + 11, 2),
    (T0 + 500, 50), (T0 + 505, 51), (T0 + 990, 99), (T0 + 991, 100), (T0 + 10**9, 100),
])
def test_from_time_monotonic(log100, ts, first):
    assert offsets(log100, ("time", ts)) == list(range(first, 100))


def test_from_time_with_out_of_order_timestamps(tmp_path):
    """Kafka's offsetsForTimes: the first offset (in log order) whose timestamp >= ts."""
    log = make_log(tmp_path)
    stamps = []
    for i in range(120):
        # a saw tooth: rises within each group of 10, each group starts lower than the
        # last group's peak; one far-future outlier at offset 37
        stamps.append(T0 + 1000 * (i // 10) + 300 * (i % 10))
    stamps[37] = T0 + 10**7
    produce(log, [f"x{i}".encode() * 15 for i in range(120)], timestamps=stamps)
    assert len(log.topic("t").partition(0).segment_bases()) > 2
    got = read_all(log)
    assert [ts for _p, _o, ts, *_ in got] == stamps
    for target in sorted(set(stamps) | {s + 1 for s in stamps} | {s - 1 for s in stamps} | {0}):
        expected_first = next((i for i, s in enumerate(stamps) if s >= target), 120)
        assert offsets(log, ("time", target)) == list(range(expected_first, 120)), target


def test_from_time_with_explicit_timestamps_in_one_batch(tmp_path):
    log = make_log(tmp_path, config={"segment.bytes": 1 << 20})
    with log.producer("t", background=False) as p:
        for i, ts in enumerate([500, 100, 900, 300, 700]):
            p.send(f"{i}".encode(), key=b"k", partition=0, timestamp=ts)
    assert offsets(log, ("time", 50)) == [0, 1, 2, 3, 4]
    assert offsets(log, ("time", 501)) == [2, 3, 4]
    assert offsets(log, ("time", 900)) == [2, 3, 4]
    assert offsets(log, ("time", 901)) == []


def test_unknown_start_spec(log100):
    with pytest.raises(ValueError):
        log100.reader("t", partitions=[0], start=("sideways", 3))


# ------------------------------------------------------------------ names

BAD_NAMES = ["", ".", "..", "a/b", "a\x00b", "x" * 250, "über", "a b", "../etc", "a\\b",
             "tab\t", "new\nline"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_topic_names_refused_before_touching_files(tmp_path, name):
    log = fslog.Log(str(tmp_path / "root"))
    before = sorted(os.walk(log.root))
    with pytest.raises(fslog.InvalidNameError):
        log.create_topic(name)
    with pytest.raises(fslog.InvalidNameError):
        log.topic(name)
    with pytest.raises(fslog.InvalidNameError):
        log.producer(name)
    with pytest.raises(fslog.InvalidNameError):
        log.delete_topic(name)
    assert sorted(os.walk(log.root)) == before
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("name", ["x" * 249, "a.b_c-D9", "a", "...", "_", "-", "9"])
def test_good_topic_names_accepted(tmp_path, name):
    log = fslog.Log(str(tmp_path / "root"))
    log.create_topic(name, partitions=2)
    assert log.topics() == [name]
    with log.producer(name, background=False) as p:
        p.send(b"hello", partition=1)
    assert [v for *_, v in read_all(log, name=name, partitions=(0, 1))] == [b"hello"]
    assert os.path.isdir(files.partition_dir(log.root, name, 1))


@pytest.mark.parametrize("name", ["x" * 249, "a.b_c-D9"])
def test_delete_topic(tmp_path, name):
    log = fslog.Log(str(tmp_path / "root"))
    log.create_topic(name, partitions=2)
    produce(log, [b"v"] * 3, name=name)
    log.delete_topic(name)
    assert log.topics() == []
    assert not log.exists(name)
    with pytest.raises(fslog.UnknownTopicError):
        log.topic(name)
    log.create_topic(name)  # the name can be used again
    assert log.topic(name).partition(0).end_offset() == 0


def test_topic_exists_and_partition_range(tmp_path):
    log = make_log(tmp_path, partitions=3)
    with pytest.raises(fslog.TopicExistsError):
        log.create_topic("t")
    assert log.create_topic("t", if_not_exists=True).partition_count == 3
    with pytest.raises(fslog.FslogError):
        log.topic("t").partition(3)
    with pytest.raises(fslog.FslogError):
        log.create_topic("u", partitions=0)
    with pytest.raises(fslog.UnknownTopicError):
        log.topic("nope")
    with pytest.raises(fslog.UnknownTopicError):
        log.producer("nope", create=False)


# ------------------------------------------------------------------ configuration

@pytest.mark.parametrize("config,key", [
    ({"segment.byte": 4096}, "segment.byte"),
    ({"no.such.key": 1}, "no.such.key"),
    ({"segment.bytes": "abc"}, "segment.bytes"),
    ({"segment.bytes": 100}, "segment.bytes"),
    ({"segment.bytes": "1.5"}, "segment.bytes"),
    ({"segment.ms": 0}, "segment.ms"),
    ({"retention.ms": -2}, "retention.ms"),
    ({"retention.bytes": "lots"}, "retention.bytes"),
    ({"cleanup.policy": "shred"}, "cleanup.policy"),
    ({"cleanup.policy": ""}, "cleanup.policy"),
    ({"min.cleanable.dirty.ratio": 1.5}, "min.cleanable.dirty.ratio"),
    ({"min.cleanable.dirty.ratio": "half"}, "min.cleanable.dirty.ratio"),
    ({"max.message.bytes": 10}, "max.message.bytes"),
    ({"index.interval.bytes": -1}, "index.interval.bytes"),
])
def test_bad_config_refused_naming_the_key(tmp_path, config, key):
    log = fslog.Log(str(tmp_path / "root"))
    with pytest.raises(fslog.ConfigError) as ei:
        log.create_topic("t", config=config)
    assert key in str(ei.value)
    assert log.topics() == []
    assert os.listdir(files.topics_dir(log.root)) == []


def test_good_config_parsed_and_stored(tmp_path):
    log = fslog.Log(str(tmp_path / "root"))
    t = log.create_topic("t", config={"segment.bytes": "4096", "retention.ms": -1,
                                      "cleanup.policy": "delete,compact",
                                      "min.cleanable.dirty.ratio": "0.25"})
    assert t.config.overrides == {"segment.bytes": 4096, "retention.ms": -1,
                                  "cleanup.policy": "compact,delete",
                                  "min.cleanable.dirty.ratio": 0.25}
    eff = fslog.Log(log.root).topic("t").config.effective()
    assert eff["segment.bytes"] == 4096 and eff["max.message.bytes"] == 1048588
    with pytest.raises(fslog.ConfigError, match="index.interval.bytes"):
        t.set_config({"index.interval.bytes": "x"})
    t.set_config({"segment.bytes": 8192})
    assert fslog.Log(log.root).topic("t").config.segment_bytes == 8192


def test_parse_assignments():
    from fslog.config import parse_assignments
    assert parse_assignments(["segment.bytes=4096", " retention.ms = -1 "]) == \
        {"segment.bytes": 4096, "retention.ms": -1}
    with pytest.raises(fslog.ConfigError, match="KEY=VALUE"):
        parse_assignments(["segment.bytes"])
    with pytest.raises(fslog.ConfigError, match="bogus"):
        parse_assignments(["bogus=1"])


def test_record_too_large(tmp_path):
    log = make_log(tmp_path, config={"max.message.bytes": 1000})
    with log.producer("t", background=False) as p:
        with pytest.raises(fslog.RecordTooLargeError):
            p.send(b"x" * 2000, partition=0)
        p.send(b"x" * 500, partition=0)
    assert offsets(log, "beginning") == [0]


def test_an_append_refused_for_damage_keeps_no_descriptors(tmp_path):
    # damage in the middle of the active segment (valid batches after it) is refused on
    # every append; a long-running process (fslog serve) asking again and again must not
    # keep the segment's and its indexes' descriptors each time
    from fslog.errors import CorruptRecordError
    from fslog.records import batch as rb
    log = make_log(tmp_path, config={"segment.bytes": 1 << 20})
    produce(log, [b"first"])
    produce(log, [b"second"])
    part = log.topic("t").partition(0)
    seg = os.path.join(part.path, files.segment_name(0))
    with open(seg, "r+b") as f:  # a flipped bit in the first batch's records
        f.seek(rb.HEADER_SIZE + 2)
        b = f.read(1)
        f.seek(rb.HEADER_SIZE + 2)
        f.write(bytes([b[0] ^ 1]))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(CorruptRecordError, match="position 0"):
            part.append([rb.encode_records([(None, b"new", T0, [])])])
    assert len(os.listdir("/proc/self/fd")) <= before + 1  # (the partition lock file)
    part.close()
