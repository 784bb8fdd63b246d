"""The follower side of storage (storage/replica.py) and leader epochs
(storage/leader_epoch.py): appends at the leader's offsets, rolls where the leader rolled,
truncation, log start, promotion, and OffsetForLeaderEpoch."""

from __future__ import annotations

import filecmp
import os

import pytest
from kafka_judge import kafka_records

import fslog
from fslog.errors import NotLeaderError, ReplicationError
from fslog.records import batch as rb
from fslog.storage import leader_epoch
from fslog.storage.replica import ReplicaPartition, promote, write_follower_state
from fslog.storage.verify import verify_partition

TINY = {"segment.bytes": 1024, "index.interval.bytes": 128, "retention.ms": -1}
T0 = 1_700_000_000_000


def leader_with(tmp_path, n=300, config=None):
    log = fslog.Log(str(tmp_path / "leader"))
    log.create_topic("t", config=dict(TINY, **(config or {})))
    p = log.topic("t").partition(0)
    for i in range(0, n, 10):
        p.append([rb.encode_values([b"v%05d" % j for j in range(i, i + 10)], T0)])
    p.sync()
    return log, p


def follower_of(tmp_path, config=None):
    log = fslog.Log(str(tmp_path / "follower"))
    log.create_topic("t", config=dict(TINY, **(config or {})))
    return log, ReplicaPartition(log.root, "t", 0, log.topic("t").config)


def all_bytes(p) -> bytes:
    out = b""
    for b in p.segment_bases():
        with open(os.path.join(p.path, f"{b:020d}.log"), "rb") as f:
            out += f.read()
    return out


def copy_all(leader_p, rp, chunk=700):
    """Feed the leader's bytes to the follower in pieces that end on batch boundaries."""
    data = all_bytes(leader_p)
    pos = 0
    while pos < len(data):
        end = pos
        while end < len(data) and (end == pos or end - pos < chunk):
            end += rb.read_header(data, end).size
        rp.follower_append(data[pos:end], leader_p.segment_bases())
        pos = end
    rp.sync()


def test_follower_copies_bytes_and_rolls_where_the_leader_did(tmp_path):
    _, lp = leader_with(tmp_path)
    # a follower whose own segment.bytes would roll elsewhere still rolls where the leader did
    flog, rp = follower_of(tmp_path, {"segment.bytes": 100000})
    copy_all(lp, rp)
    assert rp.segment_bases() == lp.segment_bases() and len(lp.segment_bases()) > 3
    for b in lp.segment_bases():
        name = f"{b:020d}.log"
        assert filecmp.cmp(os.path.join(lp.path, name), os.path.join(rp.path, name), shallow=False)
    assert rp.end_offset() == 300
    assert not verify_partition(flog.topic("t").partition(0))["problems"]
    assert [(r[0], r[3]) for r in kafka_records(all_bytes(rp))] == [(j, b"v%05d" % j) for j in range(300)]


def test_follower_refuses_a_batch_that_does_not_continue_its_log(tmp_path):
    _, lp = leader_with(tmp_path, n=50)
    _, rp = follower_of(tmp_path)
    data = all_bytes(lp)
    first = rb.read_header(data, 0).size
    rp.follower_append(data[:first])
    with pytest.raises(ReplicationError, match="starts at offset 0, but this log ends at 10"):
        rp.follower_append(data[:first])
    bad = bytearray(data[first:first * 2])
    bad[-1] ^= 0xFF
    with pytest.raises(ReplicationError, match="CRC"):
        rp.follower_append(bad)
    with pytest.raises(ReplicationError, match="middle of a batch"):
        rp.follower_append(data[first:first * 2 - 3])
    assert rp.end_offset() == 10  # nothing refused was written


def test_truncate_to_drops_whole_batches_and_epochs(tmp_path):
    _, lp = leader_with(tmp_path)
    flog, rp = follower_of(tmp_path)
    copy_all(lp, rp)
    leader_epoch.write_entries(leader_epoch.checkpoint_path(rp), [(0, 0), (3, 100), (4, 200)])
    r = rp.truncate_to(155)  # inside the batch 150..159: it goes too
    assert r == {"from_offset": 300, "to_offset": 150, "records": 150,
                 "bytes": r["bytes"]} and r["bytes"] > 0
    assert rp.end_offset() == 150
    assert leader_epoch.entries(rp) == [(0, 0), (3, 100)]
    assert not verify_partition(flog.topic("t").partition(0))["problems"]
    assert all_bytes(rp) == all_bytes(lp)[:len(all_bytes(rp))]
    # truncating to a segment base drops that segment; appending again continues there
    base = [b for b in rp.segment_bases() if b > 0][0]
    rp.truncate_to(base)
    assert rp.end_offset() == base and base not in rp.segment_bases()
    rp.start_at(120)
    assert rp.segment_bases() == [120] and rp.end_offset() == 120


def test_advance_start_follows_the_leaders_retention(tmp_path):
    _, lp = leader_with(tmp_path)
    _, rp = follower_of(tmp_path)
    copy_all(lp, rp)
    bases = rp.segment_bases()
    deleted = rp.advance_start(bases[2] + 1)  # only whole segments below it go
    assert deleted == bases[:2] and rp.start_offset() == bases[2]
    rp.advance_start(1000)  # past the end: start over there
    assert rp.segment_bases() == [1000] and rp.end_offset() == 1000


def test_leader_epochs_stamp_batches_and_answer_offset_for_leader_epoch(tmp_path):
    log, lp = leader_with(tmp_path, n=30)
    assert leader_epoch.entries(lp) == [(0, 0)]  # no checkpoint: epoch 0 from the start
    assert leader_epoch.end_offset_for(lp, 0) == (0, 30)
    assert leader_epoch.begin_leadership(lp) == 1
    lp.append([rb.encode_values([b"x"] * 5, T0)])
    assert leader_epoch.begin_leadership(lp) == 2
    lp.append([rb.encode_values([b"y"] * 5, T0)])
    with open(leader_epoch.checkpoint_path(lp)) as f:
        assert f.read() == "0\n3\n0 0\n1 30\n2 35\n"  # Kafka's leader-epoch-checkpoint
    assert [h.leader_epoch for h in _headers(lp)] == [0, 0, 0, 1, 2]
    assert leader_epoch.end_offset_for(lp, 0) == (0, 30)
    assert leader_epoch.end_offset_for(lp, 1) == (1, 35)
    assert leader_epoch.end_offset_for(lp, 2) == (2, 40)
    assert leader_epoch.end_offset_for(lp, 7) == (2, 40)
    # a follower notes epochs from the batches it appends
    _, rp = follower_of(tmp_path)
    copy_all(lp, rp)
    assert leader_epoch.entries(rp) == [(0, 0), (1, 30), (2, 35)]


def _headers(p):
    data = all_bytes(p)
    pos = 0
    while pos < len(data):
        h = rb.read_header(data, pos)
        yield h
        pos += h.size


def test_a_follower_root_refuses_producers_until_promoted(tmp_path):
    _, lp = leader_with(tmp_path, n=20)
    flog, rp = follower_of(tmp_path)
    copy_all(lp, rp)
    write_follower_state(flog.root, {"leader": "elsewhere", "topics": {}, "groups": []})
    p = flog.topic("t").partition(0)
    with pytest.raises(NotLeaderError, match="fslog promote"):
        p.append([rb.encode_values([b"z"], T0)])
    done = promote(flog.root)
    assert done == [{"topic": "t", "partition": 0, "epoch": 1, "start_offset": 20}]
    assert p.append([rb.encode_values([b"z"], T0)]) == [(20, 20)]
    assert list(_headers(p))[-1].leader_epoch == 1
    assert promote(flog.root) == []  # not a follower any more: nothing to do


def test_install_segment_replaces_local_segments_with_the_leaders(tmp_path):
    _, lp = leader_with(tmp_path)
    _, rp = follower_of(tmp_path)
    copy_all(lp, rp)
    bases = lp.segment_bases()
    # the leader's compaction merged its first three segments into one (same offsets)
    merged = b"".join(open(os.path.join(lp.path, f"{b:020d}.log"), "rb").read() for b in bases[:3])
    src = tmp_path / "merged.log"
    src.write_bytes(merged)
    assert rp.install_segment(bases[0], bases[3], str(src))
    assert rp.segment_bases() == [bases[0]] + bases[3:]
    assert all_bytes(rp) == all_bytes(lp)
    assert not rp.install_segment(bases[0], bases[3] + 1, str(src))  # wrong shape: refused
