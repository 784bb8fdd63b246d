"""What the replication tests share (test helper): fixture lines, comparing two roots'
segment files, and the "follower killed -9 mid-copy resumes with no gap and no duplicate"
check, whatever the follower copies from (``fslog replicate --from`` a root's path or a
server's ``HOST:PORT``).

- ``lines(prefix, n, start=0)``: ``n`` lines ``PREFIX-NNNNNN``.
- ``logs_of(root, topic, p)``, ``end_offset(root, topic, p)``, ``assert_identical(a, b,
  topic, partitions)``: segment files by name; a log-end offset (None: no such topic);
  the same segment files with the same bytes on both sides.
- ``two_partitions_of_tiny_segments(root, records)`` and then
  ``kill_follower_mid_copy_and_resume(cli, leader, follower, source, ...)``.
"""

from __future__ import annotations

import filecmp
import os
import random
import signal
import subprocess
from pathlib import Path

from conftest import wait_for

import fslog

TINY = ["--config", "segment.bytes=4096", "--config", "index.interval.bytes=512"]


def lines(prefix: str, n: int, start: int = 0) -> bytes:
    return b"".join(b"%s-%06d\n" % (prefix.encode(), i) for i in range(start, start + n))


def logs_of(root, topic: str, partition: int = 0) -> dict[str, str]:
    d = os.path.join(root, "topics", topic, f"{topic}-{partition}")
    return {n: os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".log")}


def end_offset(root, topic: str, partition: int = 0) -> int | None:
    try:
        return fslog.Log(str(root)).topic(topic).partition(partition).end_offset()
    except fslog.FslogError:
        return None


def assert_identical(a, b, topic: str, partitions: int = 1) -> None:
    """The same segment files with the same bytes on both sides."""
    for p in range(partitions):
        la, lb = logs_of(a, topic, p), logs_of(b, topic, p)
        assert list(la) == list(lb), f"{topic}/{p}: segments {list(la)} vs {list(lb)}"
        for name in la:
            assert filecmp.cmp(la[name], lb[name], shallow=False), f"{topic}/{p}: {name} differs"


def two_partitions_of_tiny_segments(leader: Path, records: int) -> None:
    """Topic ``t`` on ``leader``: 2 partitions, tiny segments, ``records`` lines ``r-N``
    (made through the library: the set-up of a test about the follower)."""
    log = fslog.Log(str(leader))
    log.create_topic("t", partitions=2, config={"segment.bytes": 4096,
                                                 "index.interval.bytes": 512})
    with log.producer("t") as producer:
        producer.send_values(lines("r", records).splitlines())


def kill_follower_mid_copy_and_resume(cli, leader: Path, follower: Path, source: str, *,
                                      records: int, live: int, most_segments: int, seed: int,
                                      trials: int = 3) -> None:
    """``trials`` times: a producer appends ``live`` lines to topic ``t`` on ``leader``
    (``records`` lines made by ``two_partitions_of_tiny_segments``) while ``fslog
    replicate --from SOURCE`` copies into ``follower`` and is killed -9 once the copy
    holds more than a random number (3 to ``most_segments``) of files. A last ``replicate --once`` finishes
    the copy: byte-identical segments, a sound follower (verify), and ``fslog consume``
    of both roots prints the same records (partition, offset, value): every record once,
    none missing."""
    rng = random.Random(seed)
    parts = [follower / "topics" / "t" / f"t-{p}" for p in range(2)]
    for trial in range(trials):
        prod = cli.popen("--root", leader, "produce", "t", stdin=subprocess.PIPE)
        prod.stdin.write(lines(f"live{trial}", live))
        prod.stdin.flush()
        f = cli.popen("--root", follower, "replicate", "--from", source)
        kill_at = rng.randint(3, most_segments)
        wait_for(lambda: all(p.is_dir() for p in parts), timeout=60, what="the copy to start")
        wait_for(lambda: sum(len(os.listdir(p)) for p in parts) > kill_at,
                 timeout=60, interval=0.001, what="some segments")
        f.send_signal(signal.SIGKILL)
        f.wait(timeout=10)
        prod.stdin.close()
        assert prod.wait(timeout=60) == 0
    cli("--root", follower, "replicate", "--from", source, "--once")
    assert_identical(leader, follower, "t", 2)
    cli("--root", follower, "verify")
    got = cli("--root", follower, "consume", "t", "--format", "%p %o %s").stdout.splitlines()
    want = cli("--root", leader, "consume", "t", "--format", "%p %o %s").stdout.splitlines()
    assert got == want and len(got) == records + trials * live
