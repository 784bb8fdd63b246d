"""Several producer processes appending to one partition at once (fslog/partition.py's lock),
with a lockless reader following along."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from kafka_judge import kafka_batches

import fslog
from fslog.storage import files
from fslog.storage.reader import PartitionReader

PRODUCERS = 4
PER_PRODUCER = 2000

PRODUCER_SCRIPT = r'''
import os, sys, time
import fslog
root, ident, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
log = fslog.Log(root)
p = log.producer("busy", background=False, batch_bytes=4096)
open(go + ".ready-%d" % ident, "w").close()
deadline = time.time() + 30
while not os.path.exists(go):          # start together
    if time.time() > deadline:
        sys.exit("no go signal")
    time.sleep(0.001)
i = 0
while i < n:
    kind = i % 5
    if kind == 3:                       # a values-only run (the fast path)
        k = min(7, n - i)
        p.send_values([b"P%d:%06d:" % (ident, i + j) + b"v" * 60 for j in range(k)], partition=0)
        i += k
    else:
        p.send(b"P%d:%06d:" % (ident, i) + b"x" * (40 + i % 50), key=b"producer-%d" % ident,
               headers=[("seq", b"%d" % i)] if kind == 1 else None, partition=0)
        i += 1
    if i % 97 == 0:
        p.flush()
    if i % 50 == 0:
        time.sleep(0.002)  # give the others a turn at the lock (filelock polls every 50 ms)
p.close()
'''


def test_four_producer_processes_one_partition(tmp_path):
    root = str(tmp_path / "root")
    log = fslog.Log(root)
    log.create_topic("busy", partitions=1,
                     config={"segment.bytes": 64 * 1024, "index.interval.bytes": 1024})
    go = str(tmp_path / "go")
    procs = [subprocess.Popen([sys.executable, "-c", PRODUCER_SCRIPT, root, str(i),
                               str(PER_PRODUCER), go],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(PRODUCERS)]
    deadline = time.time() + 60
    while not all(os.path.exists(f"{go}.ready-{i}") for i in range(PRODUCERS)):
        assert all(p.poll() is None for p in procs), "a producer died before the start"
        assert time.time() < deadline, "producers did not start"
        time.sleep(0.005)
    open(go, "w").close()  # all four are at the barrier: go

    # a reader follows while the producers write: it must only ever see whole batches
    part = log.topic("busy").partition(0)
    follower = PartitionReader(part, 0)
    followed = []
    deadline = time.time() + 120
    while any(p.poll() is None for p in procs):
        for b in follower.fetch(max_bytes=64 * 1024):
            followed.extend((r.offset, r.value) for r in b.records())
        assert time.time() < deadline, "producers did not finish"
        time.sleep(0.002)
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err.decode()[-2000:]
    for b in follower.fetch():
        followed.extend((r.offset, r.value) for r in b.records())
    follower.close()

    total = PRODUCERS * PER_PRODUCER
    recs = [(c.offset, c.value, c.key, c.headers) for c in log.reader("busy")]
    # offsets dense 0..N-1
    assert [o for o, *_ in recs] == list(range(total))
    assert part.end_offset() == total
    # every record present exactly once, each producer's records in its own order
    by_producer: dict[int, list[int]] = {i: [] for i in range(PRODUCERS)}
    for _o, value, key, headers in recs:
        ident, seq = int(value[1:2]), int(value[3:9])
        by_producer[ident].append(seq)
        if key is not None:
            assert key == b"producer-%d" % ident
        if headers:
            assert headers == (("seq", b"%d" % seq),)
    for ident, seqs in by_producer.items():
        assert seqs == list(range(PER_PRODUCER)), f"producer {ident}"
    # the appends really were interleaved
    switches = sum(1 for a, b in zip(recs, recs[1:]) if a[1][1] != b[1][1])
    assert switches >= PRODUCERS * 2
    # the follower saw exactly the same log
    assert followed == [(o, v) for o, v, *_ in recs]
    # several segments, each parsed by kafka-python with valid CRCs, contiguous offsets
    d = files.partition_dir(root, "busy", 0)
    segs = sorted(f for f in os.listdir(d) if f.endswith(".log"))
    assert len(segs) >= 3
    expected = 0
    for s in segs:
        batches = kafka_batches(open(os.path.join(d, s), "rb").read())
        assert files.parse_segment_name(s) == expected
        for b in batches:
            assert b.base_offset == expected
            expected = b.base_offset + b.last_offset_delta + 1
    assert expected == total
