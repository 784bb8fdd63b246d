"""Reliability under kill -9, with real processes: the promise of the issue "Reliability and
hostile input".

A record is acknowledged when ``fslog produce`` exits 0 or ``Producer.flush()`` returns; an
acknowledged record survives kill -9 of any fslog process at any moment; after a crash
every partition holds a prefix of what each producer sent to it, in order, with no
duplicates, gaps or garbage; the next writer repairs a torn tail and goes on; producers and
consumers in any number of processes never corrupt each other; committed group offsets and
the group registry survive kill -9 in the middle of a write.

1. ``fslog produce`` killed at random moments (random inputs, ``--linger-ms``, record
   shapes; tiny ``segment.bytes`` and ``index.interval.bytes`` so that kills land in rolls
   and index writes), after acknowledged runs: clean prefix, verify (torn tail only), the
   next writer repairs, kafka-python reads every segment. Such kills rarely cut a write()
   short, so records of 1-2 MB are then killed while their write() copies, and producers
   kill themselves inside such a write(): real torn tails, which readers skip and the
   next writer repairs. What a kill hits is printed, never asserted (it depends on the
   machine's speed); a kill that must land somewhere is injected there.
2. A library producer (``send`` + ``flush`` every K records, printing the acknowledged
   count) killed at random: every acknowledged record is in the log, the log is a prefix.
3. Eight producer processes on two partitions at once (``--partition`` and keyed), with
   and without kill -9 of some of them.
4. In all of the above, a ``fslog consume --follow`` reader runs throughout: what it
   prints is exactly the final log (never a damaged, torn or duplicate record).
5. Group members killed -9 during commits and rebalances while a producer streams, with a
   sampler reading every committed offset file and registry.json all the while; a tight
   loop of commits/registry updates killed -9.
6. kill -9 of ``fslog verify --repair`` and of a producer creating its topic; hostile
   record values holding a RecordBatch in a torn tail; a follower looking at a repair in
   progress.

Every trial uses a fixed seed (``FSLOG_CRASH_SEED`` moves the base) that is printed when
it fails; the moment of each kill is random by nature. ``FSLOG_SOAK=1`` multiplies the
trial counts by 10 (``FSLOG_SOAK=N`` for N > 1: by N).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import wait_for
from kafka_judge import kafka_batches

import fslog
from fslog.records import batch as rb
from fslog.records.partitioner import partition_for_key

_SOAK = int(os.environ.get("FSLOG_SOAK", "0") or 0)
SOAK = 10 if _SOAK == 1 else max(1, _SOAK)
BASE_SEED = int(os.environ.get("FSLOG_CRASH_SEED", "20250101"))
FMT = "%p %o %s"  # partition, offset, value


def n_trials(n: int) -> int:
    return n * SOAK


@contextmanager
def trial(seed: int, what: str):
    """Re-raise any failure with the trial's seed, so that its inputs can be replayed."""
    try:
        yield
    except BaseException as e:  # noqa: BLE001 - annotate and re-raise
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise AssertionError(f"{what} failed with seed {seed} (replay its inputs with "
                             f"FSLOG_CRASH_SEED={seed}): {type(e).__name__}: {e}"[:6000]) from e


# ---------------------------------------------------------------- helpers
def parse_plo(data: bytes, allow_torn: bool = False) -> list[tuple[int, int, bytes]]:
    """Lines 'partition offset value' (values hold no newline) -> [(p, o, value)]."""
    if data and not data.endswith(b"\n"):
        assert allow_torn, f"output ends with a partial line: {data[-200:]!r}"
        data = data[:data.rfind(b"\n") + 1]
    out = []
    for line in data.split(b"\n")[:-1]:
        p, o, v = line.split(b" ", 2)
        out.append((int(p), int(o), v))
    return out


def by_partition(rows) -> dict[int, list[tuple[int, bytes]]]:
    out: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for p, o, v in rows:
        out[p].append((o, v))
    return out


def payload_pool(rng: random.Random, size: int = 1 << 16) -> bytes:
    # hostile bytes: everything but the newline (which ends a line of input)
    return rng.randbytes(size).replace(b"\n", b"\x0b")


def random_length(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.5:
        return rng.randrange(0, 40)
    if r < 0.93:
        return rng.randrange(40, 240)
    if r < 0.995:
        return rng.randrange(240, 3000)
    return rng.randrange(3000, 20000)  # larger than a tiny segment: a batch of its own


class Sent:
    """What one producer invocation sent: values per partition, in order, and the keys."""

    def __init__(self, tag: str):
        self.tag = tag.encode()
        self.values: dict[int, list[bytes]] = defaultdict(list)
        self.keys: dict[bytes, bytes] = {}
        self.acked = False
        self.count = 0


def make_input(rng, tag: str, n: int, *, keyed: bool, partitions: int,
               partition: int | None = None, pool: bytes | None = None,
               lengths=random_length) -> tuple[bytes, Sent]:
    """``n`` lines with unique values ``<tag>-<seq>|<random bytes>`` (lengths drawn by
    ``lengths(rng)``); keyed lines are ``key TAB value`` (for ``--key-separator`` TAB)."""
    pool = pool or payload_pool(rng)
    sent = Sent(tag)
    lines = []
    for i in range(n):
        length = lengths(rng)
        off = rng.randrange(0, len(pool) - length + 1)
        value = b"%s-%07d|" % (sent.tag, i) + pool[off:off + length]
        if keyed:
            key = b"key-%d" % rng.randrange(64)
            p = partition_for_key(key, partitions)
            lines.append(key + b"\t" + value)
            sent.keys[value] = key
        else:
            p = partition if partition is not None else 0
            lines.append(value)
        sent.values[p].append(value)
    sent.count = n
    return b"".join(x + b"\n" for x in lines), sent


def tag_of(value: bytes) -> bytes:
    return value.split(b"-", 1)[0]


def check_partition_values(values: list[bytes], sents: list[Sent], partition: int,
                           sequential: bool) -> dict[bytes, int]:
    """The records of one partition hold, for every producer, a prefix of what it sent to
    this partition (all of it if acknowledged), in its order, nothing else. With
    ``sequential`` the producers ran one after the other: their records come in blocks,
    in that order. Returns how many records of each producer are there."""
    by_tag = {s.tag: s for s in sents}
    got: dict[bytes, list[bytes]] = defaultdict(list)
    order: list[bytes] = []
    for v in values:
        t = tag_of(v)
        assert t in by_tag, f"partition {partition}: a record nobody sent: {v[:80]!r}"
        if not order or order[-1] != t:
            order.append(t)
        got[t].append(v)
    counts = {}
    for s in sents:
        mine = got.get(s.tag, [])
        want = s.values.get(partition, [])
        n = len(mine)
        if mine != want[:n]:
            bad = next(i for i in range(n) if i >= len(want) or mine[i] != want[i])
            raise AssertionError(
                f"partition {partition}: records of producer {s.tag.decode()} are not a prefix "
                f"of its input: record #{bad} is {mine[bad][:60]!r}, expected "
                f"{want[bad][:60] if bad < len(want) else None!r} "
                f"({n} records there, {len(want)} sent, duplicates: {n - len(set(mine))})")
        if s.acked:
            assert n == len(want), (f"partition {partition}: producer {s.tag.decode()} was "
                                    f"acknowledged (exit 0) but only {n} of {len(want)} "
                                    f"records are in the log")
        counts[s.tag] = n
    if sequential:
        assert len(order) == len(set(order)), f"partition {partition}: interleaved runs {order}"
        rank = {s.tag: i for i, s in enumerate(sents)}
        assert order == sorted(order, key=rank.__getitem__), f"partition {partition}: {order}"
    return counts


def read_log(root, topic: str) -> dict[int, list]:
    """Every record of every partition (through the library), by partition."""
    log = fslog.Log(str(root))
    t = log.topic(topic)
    out: dict[int, list] = {p: [] for p in range(t.partition_count)}
    r = log.reader(topic)
    try:
        for rec in r:
            out[rec.partition].append(rec)
    finally:
        r.close()
    return out


def judge_topic(root, topic: str, partitions: int) -> dict[int, list[bytes]]:
    """kafka-python parses every segment (CRC-valid batches, no trailing bytes); segment
    names are their base offsets; offsets are dense across segments. Returns the values."""
    out = {}
    for p in range(partitions):
        d = Path(root) / "topics" / topic / f"{topic}-{p}"
        expected = 0
        values: list[bytes] = []
        for seg in sorted(d.glob("*.log")):
            data = seg.read_bytes()
            base = int(seg.name[:20])
            assert base == expected, \
                f"{seg}: base offset {base}, the previous segment ends at {expected}"
            for b in kafka_batches(data):
                assert b.base_offset == expected, \
                    f"{seg}: batch at {b.base_offset}, expected {expected}"
                recs = list(b)
                assert [r.offset for r in recs] == list(range(expected, expected + len(recs)))
                values.extend(r.value for r in recs)
                expected = b.base_offset + b.last_offset_delta + 1
        out[p] = values
    return out


def log_bytes(root, topic: str) -> int:
    total = 0
    for f in (Path(root) / "topics" / topic).glob("*/*.log"):
        try:
            total += f.stat().st_size
        except FileNotFoundError:
            pass
    return total


def feed(proc: subprocess.Popen, data: bytes, rng: random.Random, pauses: bool,
         hold_eof: threading.Event | None = None) -> threading.Thread:
    """Write ``data`` to the process's stdin in random chunks (with random pauses), then
    close it; with ``hold_eof``, only once that event is set (so the process cannot
    finish before it: a kill -9 meanwhile lands in a live producer, however fast the
    machine)."""
    chunks = []
    i = 0
    while i < len(data):
        n = rng.choice((512, 4096, 65536, 1 << 20))
        chunks.append((data[i:i + n], rng.random() < 0.3 and pauses, rng.uniform(0, 0.01)))
        i += n

    def run():
        try:
            for chunk, pause, secs in chunks:
                proc.stdin.write(chunk)
                proc.stdin.flush()
                if pause:
                    time.sleep(secs)
            if hold_eof is not None:
                hold_eof.wait(120)
            proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


class Follower:
    """``fslog consume TOPIC --follow --format '%p %o %s'`` writing to a file."""

    def __init__(self, cli, topic: str, out: Path):
        self.out = out
        self.err = out.with_suffix(".err")
        with open(out, "wb") as fo, open(self.err, "wb") as fe:
            self.p = cli.popen("consume", topic, "--follow", "--format", FMT, stdout=fo, stderr=fe)

    def lines(self) -> int:
        return self.out.read_bytes().count(b"\n")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")[-3000:]

    def check_alive(self) -> None:
        rc = self.p.poll()
        assert rc is None, f"the follower died with exit status {rc}: {self.stderr()}"

    def finish(self, final: dict[int, list], timeout: float = 60) -> None:
        """Wait until it printed the whole final log; stop it; its output must be exactly
        the final log, partition by partition: nothing damaged, torn, duplicated or lost."""
        total = sum(len(v) for v in final.values())

        def caught_up():
            self.check_alive()
            return self.lines() >= total
        try:
            try:
                wait_for(caught_up, timeout=timeout, interval=0.02,
                         what=f"the follower to print all {total} records")
            except AssertionError as e:
                got = by_partition(parse_plo(self.out.read_bytes(), allow_torn=True))
                where = {p: (len(got.get(p, [])), got[p][-1][0] if got.get(p) else None, len(recs))
                         for p, recs in final.items()}
                raise AssertionError(f"{e}; (printed, last offset printed, in the log) by "
                                     f"partition: {where}; alive: {self.p.poll() is None}; "
                                     f"stderr: {self.stderr()}") from None
        finally:
            if self.p.poll() is None:
                self.p.send_signal(signal.SIGTERM)
                try:
                    self.p.wait(15)
                except subprocess.TimeoutExpired:
                    self.p.kill()
                    self.p.wait(10)
        assert self.p.returncode in (0, -signal.SIGTERM), \
            f"follower exit {self.p.returncode}: {self.stderr()}"
        assert "Traceback" not in self.stderr(), self.stderr()
        got = by_partition(parse_plo(self.out.read_bytes()))
        for p, recs in final.items():
            want = [(r.offset, r.value) for r in recs]
            mine = got.get(p, [])
            if mine != want:
                bad = next((i for i in range(min(len(mine), len(want))) if mine[i] != want[i]),
                           min(len(mine), len(want)))
                raise AssertionError(
                    f"partition {p}: the follower printed {len(mine)} records, the log holds "
                    f"{len(want)}; first difference at #{bad}: printed "
                    f"{mine[bad][:2] if bad < len(mine) else None!r:.120}, log "
                    f"{want[bad][:2] if bad < len(want) else None!r:.120}")
        assert set(got) <= set(final), f"records of partitions {set(got) - set(final)}"


def verify_torn_tail_only(cli, topic: str) -> int:
    """``fslog verify`` exits 0, or 1 reporting nothing but torn tails (which the next
    writer legitimately repairs). Returns the number of torn tails."""
    cp = cli("verify", topic, "--json", check=None)
    assert cp.returncode in (0, 1), cp.stderr.decode(errors="replace")
    report = json.loads(cp.stdout)
    probs = [p for t in report["topics"] for p in t["problems"]]
    assert (cp.returncode == 0) == (not probs), report
    assert {p["kind"] for p in probs} <= {"torn-tail"}, probs
    return len(probs)


def kill9(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.kill()
    return proc.wait(15)


# ---------------------------------------------------------------- 1. CLI producer, kill -9
def _cli_producer_trial(cli, tmp_path: Path, seed: int, stats: dict) -> None:
    rng = random.Random(seed)
    topic = f"k{seed}"
    partitions = rng.choice((1, 1, 2))
    shape = "keyed" if partitions == 2 else rng.choice(("raw", "keyed", "headers"))
    seg_bytes = rng.choice((4096, 6144, 8192, 16384))
    interval = rng.choice((0, 100, 512, 1024, 4096))
    fslog.Log(str(cli.root)).create_topic(topic, partitions=partitions, config={
        "segment.bytes": seg_bytes, "index.interval.bytes": interval})
    follower = Follower(cli, topic, tmp_path / f"follow-{seed}.out")
    pool = payload_pool(rng)

    def args(linger):
        a = ["produce", topic, "--linger-ms", linger]
        if shape == "keyed":
            a += ["--key-separator", "\t"]
        elif shape == "headers":
            a += ["--header", "src=crash", "--header", "empty="]
        return a

    def inp(tag, n):
        return make_input(rng, tag, n, keyed=shape == "keyed", partitions=partitions, pool=pool)

    sents: list[Sent] = []
    rounds = rng.randint(1, 2)
    for r in range(rounds):
        # acknowledged: runs to completion, exit 0
        for a in range(rng.randint(1 - r, 1)):
            data, s = inp(f"a{r}{a}", rng.randint(0, 1500))
            cli("produce", *args(rng.choice((0, 5, 50)))[1:], input=data)
            s.acked = True
            sents.append(s)
        # killed: kill -9 at a random moment (start-up, appends, rolls, index writes, fsync)
        data, s = inp(f"x{r}", rng.randint(2000, 12000))
        sents.append(s)
        linger = rng.choice((0, 1, 5, 20, 100, 250))
        from_file = rng.random() < 0.3
        before = log_bytes(cli.root, topic)
        if from_file:
            src = tmp_path / f"in-{seed}-{r}"
            src.write_bytes(data)
            with open(src, "rb") as fi:
                prod = cli.popen(*args(linger), stdin=fi)
            feeder = None
        else:
            prod = cli.popen(*args(linger), stdin=subprocess.PIPE)
            eof = threading.Event()
            feeder = feed(prod, data, rng, pauses=True, hold_eof=eof)
        if rng.random() < 0.25:
            time.sleep(rng.uniform(0, 0.3))  # start-up, recovery of the tail, first appends
        else:
            deadline = time.monotonic() + 120  # only a guard against a hang
            while log_bytes(cli.root, topic) == before and prod.poll() is None:
                assert time.monotonic() < deadline, "the producer appended nothing in 120 s"
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.25))
        rc = kill9(prod)
        if feeder is not None:
            eof.set()
            feeder.join(10)
            assert rc == -signal.SIGKILL, f"producer exit {rc} before its input ended: {prod.stderr.read()!r}"
        if rc == 0:
            s.acked = True  # it finished before the kill: acknowledged
            stats["finished"] += 1
        else:
            assert rc == -signal.SIGKILL, f"producer exit {rc}: {prod.stderr.read()!r}"
            stats["killed"] += 1

        # readers: a torn tail is "not yet written"; the log is a clean prefix
        cp = cli("consume", topic, "--format", FMT)
        rows = by_partition(parse_plo(cp.stdout))
        for p in range(partitions):
            mine = rows.get(p, [])
            assert [o for o, _ in mine] == list(range(len(mine))), f"partition {p}: offsets"
            counts = check_partition_values([v for _, v in mine], sents, p, sequential=True)
            if rc != 0 and 0 < counts[s.tag] < len(s.values.get(p, [])):
                stats["partial"] += 1
    # verify: sound, or a torn tail (the next writer's to repair)
    stats["torn"] += verify_torn_tail_only(cli, topic)

    # the next writer repairs any torn tail and goes on
    data, s = inp("n", 40 if partitions > 1 else 3)
    cli("produce", *args(5)[1:], input=data)
    s.acked = True
    sents.append(s)
    cli("verify", topic)

    final = read_log(cli.root, topic)
    judged = judge_topic(cli.root, topic, partitions)
    for p, recs in final.items():
        assert [r.offset for r in recs] == list(range(len(recs))), f"partition {p}: offsets"
        values = [r.value for r in recs]
        assert judged[p] == values, f"partition {p}: kafka-python reads other values than fslog"
        check_partition_values(values, sents, p, sequential=True)
        for r in recs:
            if shape == "keyed":
                assert r.key == next(x.keys[r.value] for x in sents if x.tag == tag_of(r.value))
            elif shape == "headers":
                assert r.headers == (("src", b"crash"), ("empty", b""))
            else:
                assert r.key is None and r.headers == ()
    follower.finish(final)


@pytest.mark.slow
@pytest.mark.parametrize("part", range(5))
def test_kill9_cli_producer_at_random_moments(cli, tmp_path, part):
    """25 trials (seeds BASE_SEED+0..24) in five parts that pytest-xdist can spread. A
    producer fed through a pipe gets its end of input only after the kill, so it is always
    killed alive (between appends, inside one, at a roll or an fsync: wherever it is); one
    fed from a file may finish first (then all of it is acknowledged). What the kills hit
    is printed, never asserted: it depends on the machine's speed; safety is asserted in
    every trial."""
    stats = defaultdict(int)
    trials = n_trials(25)
    for i in range(part * trials // 5, (part + 1) * trials // 5):
        seed = BASE_SEED + i
        with trial(seed, f"producer kill trial {i}"):
            _cli_producer_trial(cli, tmp_path, seed, stats)
    print(f"\nkill -9 of fslog produce: {dict(stats)}")


# ---------------------------------------------------------------- 1b. kill -9 inside a write()
def _big_write_trial(cli, tmp_path: Path, seed: int, stats: dict, tear: bool) -> None:
    rng = random.Random(seed)
    topic = f"b{seed}"
    fslog.Log(str(cli.root)).create_topic(topic, config={
        "max.message.bytes": 4 << 20})  # one segment: the kill below watches its size
    follower = Follower(cli, topic, tmp_path / f"bfollow-{seed}.out")
    pool = payload_pool(rng, 4 << 20)
    big = lambda r: r.randrange(1 << 20, 2 << 20)  # noqa: E731 - a record per write()
    sents = []
    data, s = make_input(rng, "a", rng.randint(1, 2), keyed=False, partitions=1, pool=pool,
                         lengths=big)
    cli("produce", topic, input=data)
    s.acked = True
    sents.append(s)
    data, s = make_input(rng, "x", 5, keyed=False, partitions=1, pool=pool, lengths=big)
    sents.append(s)
    src = tmp_path / f"big-{seed}"
    src.write_bytes(data)
    before = log_bytes(cli.root, topic)
    if tear:
        # the producer kills itself inside its first or second write() of a batch, after
        # writing a random part of it: a torn tail on disk, whatever the machine's speed
        with open(src, "rb") as fi:
            prod = cli.popen_crashing("big-write", rng.randint(1, 2), "produce", topic,
                                      fraction=rng.uniform(0.02, 0.98), stdin=fi)
        assert prod.wait(120) == -signal.SIGKILL, prod.stderr.read()
    else:
        with open(src, "rb") as fi:
            prod = cli.popen("produce", topic, stdin=fi)
        # kill it the moment the log has grown past a random point of its input: the file
        # grows page by page while a write() copies, so this lands inside a write() often
        target = before + int(rng.uniform(0.05, 0.9) * len(data))
        deadline = time.monotonic() + 120  # only a guard against a hang
        fd = os.open(cli.segments(topic)[0], os.O_RDONLY)
        try:
            while os.fstat(fd).st_size < target and prod.poll() is None:
                assert time.monotonic() < deadline, "the producer did not write its input in 120 s"
        finally:
            os.close(fd)
        if kill9(prod) == 0:
            s.acked = True
    src.unlink()
    cp = cli("consume", topic, "--format", FMT)
    rows = parse_plo(cp.stdout)
    assert [o for _, o, _ in rows] == list(range(len(rows)))
    check_partition_values([v for _, _, v in rows], sents, 0, sequential=True)
    torn = verify_torn_tail_only(cli, topic)
    if tear:
        assert torn == 1, "the write cut short left no torn tail"
    stats["torn"] += torn
    stats["trials"] += 1
    data, s = make_input(rng, "n", 3, keyed=False, partitions=1, pool=pool,
                         lengths=lambda r: r.choice((0, 10, 5000)))
    cli("produce", topic, input=data)
    s.acked = True
    sents.append(s)
    cli("verify", topic)
    final = read_log(cli.root, topic)
    values = [r.value for r in final[0]]
    assert [r.offset for r in final[0]] == list(range(len(values)))
    if torn:  # kafka-python reads what the next writer repaired (its CRC is slow)
        assert judge_topic(cli.root, topic, 1)[0] == values
    check_partition_values(values, sents, 0, sequential=True)
    follower.finish(final)


@pytest.mark.slow
def test_kill9_in_the_middle_of_large_writes_tears_the_tail_next_writer_repairs(cli, tmp_path):
    """Records of 1-2 MB: a write() of a batch takes long enough that kill -9 can cut
    it short, leaving a real torn tail (a prefix of the write) on disk. Kills at random
    moments (whatever they hit), then producers that die inside a write() by design (a
    torn tail every time): readers skip it, the next writer repairs it."""
    stats = defaultdict(int)
    for i in range(n_trials(5)):
        seed = BASE_SEED + 6000 + i
        with trial(seed, f"large-write kill trial {i}"):
            _big_write_trial(cli, tmp_path, seed, stats, tear=False)
    for i in range(n_trials(3)):
        seed = BASE_SEED + 6500 + i
        with trial(seed, f"torn large-write trial {i}"):
            _big_write_trial(cli, tmp_path, seed, stats, tear=True)
    print(f"\nkill -9 during large writes: {dict(stats)}")


# ---------------------------------------------------------------- 2. library producer, kill -9
LIB_PRODUCER = r'''
import os, random, sys
import fslog
root, topic = sys.argv[1], sys.argv[2]
seed, partitions, run = map(int, sys.argv[3:6])
rng = random.Random(seed)
log = fslog.Log(root)
k = rng.choice((1, 3, 17, 100, 400))
p = log.producer(topic, linger_ms=rng.choice((0, 2, 20, 200)),
                 batch_bytes=rng.choice((1024, 4096, 65536, 512 * 1024)),
                 background=rng.random() < 0.7)
pool = rng.randbytes(1 << 15).replace(b"\n", b".")
out = sys.stdout
i = 0
while True:
    part = (i // run) % partitions
    n = rng.randrange(0, 300) if rng.random() < 0.95 else rng.randrange(300, 9000)
    off = rng.randrange(0, len(pool) - n + 1)
    value = b"v-%09d|" % i + pool[off:off + n]
    shape = rng.random()
    if shape < 0.4:
        p.send(value, partition=part)
        i += 1
    elif shape < 0.6:
        p.send(value, key=b"k%d" % (i % 13), partition=part)
        i += 1
    elif shape < 0.7:
        p.send(value, headers=[("h", b"%d" % i), ("none", None)], partition=part)
        i += 1
    else:
        m = min(rng.randint(1, 40), run - i % run)
        vals = [value] + [b"v-%09d|" % (i + j) + pool[:rng.randrange(0, 80)] for j in range(1, m)]
        p.send_values(vals, partition=part)
        i += m
    if i // k != (i - 1) // k or rng.random() < 0.01:
        p.flush()  # returned: everything sent so far is acknowledged
        out.write("%d\n" % i)
        out.flush()
'''


def _lib_producer_trial(cli, tmp_path: Path, seed: int, stats: dict) -> None:
    rng = random.Random(seed)
    topic = f"l{seed}"
    partitions = rng.choice((1, 2))
    cli.create(topic, "--partitions", partitions,
               "--config", f"segment.bytes={rng.choice((4096, 8192, 16384, 65536))}",
               "--config", f"index.interval.bytes={rng.choice((0, 256, 1024, 4096))}")
    follower = Follower(cli, topic, tmp_path / f"lfollow-{seed}.out")
    run = rng.randint(1, 50)  # records n*run .. n*run+run-1 go to partition n % partitions
    child = subprocess.Popen([sys.executable, "-c", LIB_PRODUCER, str(cli.root), topic, str(seed),
                              str(partitions), str(run)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cli.procs.append(child)
    acks: list[int] = []

    def read_acks():
        for line in child.stdout:
            acks.append(int(line))
    reader = threading.Thread(target=read_acks, daemon=True)
    reader.start()
    wait_for(lambda: acks or child.poll() is not None, timeout=120, what="the first acknowledgement")
    time.sleep(rng.uniform(0, 0.6))
    assert child.poll() is None, child.stderr.read().decode(errors="replace")
    kill9(child)
    reader.join(10)
    acked = acks[-1] if acks else 0
    stats["acked"] += acked

    final = read_log(cli.root, topic)
    present = set()
    for p, recs in final.items():
        assert [r.offset for r in recs] == list(range(len(recs))), f"partition {p}: offsets"
        seqs = []
        for r in recs:
            m = re.match(rb"v-(\d{9})\|", r.value)
            assert m, f"partition {p} offset {r.offset}: garbage {r.value[:60]!r}"
            seqs.append(int(m.group(1)))
        # a prefix of what was sent to this partition: no duplicate, no gap, in order
        top = seqs[-1] if seqs else -1
        want = [n for n in range(top + 1) if (n // run) % partitions == p]
        if seqs != want:
            bad = next(i for i in range(len(seqs)) if i >= len(want) or seqs[i] != want[i])
            raise AssertionError(f"partition {p}: record #{bad} is {seqs[bad]}, expected "
                                 f"{want[bad] if bad < len(want) else None} (not a prefix)")
        present.update(seqs)
    # every record the producer saw acknowledged is there
    missing = [n for n in range(acked) if n not in present]
    assert not missing, f"{acked} records acknowledged; missing: {missing[:10]}"
    stats["unacked_visible"] += len(present) - acked
    top = max(present, default=-1)
    verify_torn_tail_only(cli, topic)
    # the next writer goes on
    for p in range(partitions):
        cli("produce", topic, "--partition", p,
            input=b"".join(b"v-%09d|next\n" % (top + 1 + 2 * p + i) for i in range(2)))
    cli("verify", topic)
    final = read_log(cli.root, topic)
    judged = judge_topic(cli.root, topic, partitions)
    for p, recs in final.items():
        assert [r.offset for r in recs] == list(range(len(recs)))
        assert judged[p] == [r.value for r in recs]
    follower.finish(final)


@pytest.mark.slow
def test_kill9_library_producer_keeps_every_flushed_record(cli, tmp_path):
    stats = defaultdict(int)
    for i in range(n_trials(6)):
        seed = BASE_SEED + 1000 + i
        with trial(seed, f"library producer kill trial {i}"):
            _lib_producer_trial(cli, tmp_path, seed, stats)
    print(f"\nkill -9 of a library producer: {dict(stats)}")
    assert stats["acked"] > 0


# ---------------------------------------------------------------- 3. eight producers at once
def _eight_producers(cli, tmp_path: Path, seed: int, kills: int) -> dict:
    rng = random.Random(seed)
    topic = f"m{seed}"
    cli.create(topic, "--partitions", 2, "--config", "segment.bytes=4096",
               "--config", "index.interval.bytes=512")
    follower = Follower(cli, topic, tmp_path / f"mfollow-{seed}.out")
    pool = payload_pool(rng)
    procs, sents, feeders = [], [], []
    # the victims' input ends only after their kill: each is killed alive, however fast
    victims = rng.sample(range(8), kills)
    eof = {v: threading.Event() for v in victims}
    for i in range(8):
        keyed = i >= 4  # four write to one partition each (--partition), four keyed over both
        n = rng.randint(600, 1500)
        data, s = make_input(rng, f"w{i}", n, keyed=keyed, partitions=2,
                             partition=None if keyed else i % 2, pool=pool)
        a = ["produce", topic, "--linger-ms", rng.choice((0, 5, 50))]
        a += ["--key-separator", "\t"] if keyed else ["--partition", i % 2]
        p = cli.popen(*a, stdin=subprocess.PIPE)
        feeders.append(feed(p, data, rng, pauses=True, hold_eof=eof.get(i)))
        procs.append(p)
        sents.append(s)
    if kills:
        before = log_bytes(cli.root, topic)
        wait_for(lambda: log_bytes(cli.root, topic) > before, timeout=120, interval=0.002,
                 what="the producers' first appends")
        for v in victims:
            time.sleep(rng.uniform(0, 0.3))
            assert kill9(procs[v]) == -signal.SIGKILL, procs[v].stderr.read()[-2000:]
            eof[v].set()
    for i, p in enumerate(procs):
        try:
            rc = p.wait(300)  # only a guard against a hang
        except subprocess.TimeoutExpired:
            pytest.fail(f"producer {i} did not finish in 300 s")
        err = p.stderr.read().decode(errors="replace")
        if i in victims:
            continue
        assert rc == 0, f"producer {i}: exit {rc}: {err[-2000:]}"
        sents[i].acked = True
    for t in feeders:
        t.join(10)

    killed = [s for s in sents if not s.acked]
    if killed:
        verify_torn_tail_only(cli, topic)
        data, s = make_input(rng, "n", 40, keyed=True, partitions=2, pool=pool)
        cli("produce", topic, "--key-separator", "\t", input=data)
        s.acked = True
        sents.append(s)
    cli("verify", topic)
    final = read_log(cli.root, topic)
    judged = judge_topic(cli.root, topic, 2)
    counts: dict[bytes, int] = defaultdict(int)
    for p, recs in final.items():
        assert [r.offset for r in recs] == list(range(len(recs))), f"partition {p}: offsets"
        values = [r.value for r in recs]
        assert judged[p] == values
        for tag, n in check_partition_values(values, sents, p, sequential=False).items():
            counts[tag] += n
        # the appends really were interleaved
        switches = sum(1 for a, b in zip(values, values[1:]) if tag_of(a) != tag_of(b))
        assert switches >= 4, f"partition {p}: only {switches} switches between producers"
    for s in sents:
        if s.acked:
            assert counts[s.tag] == s.count  # every record exactly once
    follower.finish(final)
    return {"killed": len(killed), "records": sum(len(v) for v in final.values())}


@pytest.mark.slow
def test_eight_producer_processes_two_partitions(cli, tmp_path):
    for i in range(n_trials(1)):
        seed = BASE_SEED + 2000 + i
        with trial(seed, "eight producers"):
            _eight_producers(cli, tmp_path, seed, kills=0)


@pytest.mark.slow
def test_eight_producer_processes_some_killed(cli, tmp_path):
    for i in range(n_trials(2)):
        seed = BASE_SEED + 3000 + i
        with trial(seed, "eight producers, kill -9 of some"):
            kills = random.Random(seed).randint(1, 3)
            assert _eight_producers(cli, tmp_path, seed, kills=kills)["killed"] == kills


# ---------------------------------------------------------------- other fslog processes, kill -9
@pytest.mark.slow
def test_kill9_verify_repair_and_topic_creation(cli, tmp_path):
    """kill -9 of ``fslog verify --repair`` while it rebuilds lost indexes, and of
    ``fslog produce`` while it creates its topic: nothing is lost or half-made."""
    seed = BASE_SEED + 7000
    rng = random.Random(seed)
    with trial(seed, "kill -9 of verify --repair"):
        log = fslog.Log(str(cli.root))
        log.create_topic("r", config={"segment.bytes": 8192, "index.interval.bytes": 256})
        values = [b"r-%07d|" % i + b"x" * rng.randrange(0, 80) for i in range(30000)]
        with log.producer("r", batch_bytes=1024) as p:  # small batches: many per segment
            for i in range(0, len(values), 3):
                p.send_values(values[i:i + 3])
        data = b"".join(v + b"\n" for v in values)
        pdir = cli.partition_dir("r")
        for k in range(n_trials(4)):
            for f in pdir.iterdir():  # derived data lost: every index must be rebuilt
                if f.suffix in (".index", ".timeindex"):
                    f.unlink()
            if k % 2:  # killed at a random moment (whatever it was doing, if still running)
                rep = cli.popen("verify", "r", "--repair")
                time.sleep(rng.uniform(0.12, 0.5))
                kill9(rep)
            else:  # killed at a chosen point: as an index is swapped in, or half written
                rep = cli.popen_crashing(rng.choice(("replace", "write")), rng.randint(1, 40),
                                         "verify", "r", "--repair")
                assert rep.wait(120) == -signal.SIGKILL, rep.stderr.read()
            assert cli("consume", "r").stdout == data
        cli("verify", "r", "--repair")
        cli("verify", "r")
        assert cli("consume", "r").stdout == data
        for off in rng.sample(range(len(values)), 3):  # index lookups
            cp = cli("consume", "r", "--offset", off, "--max-messages", 1)
            assert cp.stdout == values[off] + b"\n"
        cli("produce", "r", input=b"after\n")
        cli("verify", "r")
        leftovers = [f.name for f in pdir.iterdir() if f.name.endswith(".rebuild")]

    with trial(seed, "kill -9 during topic creation"):
        for k in range(n_trials(4)):
            name = f"new{k}"
            prod = cli.popen("produce", name, "--partitions", 3, stdin=subprocess.PIPE)
            prod.stdin.write(b"first\n")
            prod.stdin.flush()
            time.sleep(rng.uniform(0.02, 0.25))
            acked = kill9(prod) == 0
            names = [t["name"] for t in json.loads(cli("topic", "list", "--json").stdout)]
            assert acked <= (name in names)
            cli("produce", name, "--partitions", 3, input=b"ok\n")
            out = cli("consume", name).stdout
            assert out in (b"ok\n", b"first\nok\n") or sorted(out.split()) == [b"first", b"ok"], out
            if acked:
                assert b"first" in out
            d = json.loads(cli("topic", "describe", name, "--json").stdout)
            assert len(d["partitions"]) == 3, d
            cli("verify", name)
        staging = sorted(os.listdir(cli.root / "tmp"))
    print(f"\nkill -9 of verify --repair: left behind: "
          f"{len(leftovers)} index .rebuild files, {len(staging)} entries in ROOT/tmp")


# ---------------------------------------------------------------- 5. groups, kill -9
class Sampler(threading.Thread):
    """Reads registry.json and every committed offset file of a group, over and over:
    each must parse at every moment; committed offsets never go back."""

    def __init__(self, group_dir: Path):
        super().__init__(daemon=True)
        self.dir = group_dir
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.samples = 0
        self.registry_reads = 0
        self.max_committed: dict[tuple[str, int], int] = {}

    def run(self):
        while not self.stop.is_set():
            try:
                self.sample()
            except Exception as e:  # noqa: BLE001 - any failure is a finding
                self.problems.append(f"sampler: {e!r}")
            time.sleep(0.001)

    def sample(self):
        reg = self.dir / "registry.json"
        try:
            data = reg.read_bytes()
        except FileNotFoundError:
            data = None
        if data is not None:
            try:
                doc = json.loads(data)
                assert isinstance(doc, dict) and isinstance(doc["members"], dict)
                assert isinstance(doc["generation"], int)
                self.registry_reads += 1
            except Exception as e:  # noqa: BLE001
                self.problems.append(f"registry.json: {e!r}: {data[:200]!r}")
        offsets = self.dir / "offsets"
        if not offsets.is_dir():
            return
        for tdir in offsets.iterdir():
            for f in tdir.iterdir():
                if not f.name.isdigit():
                    continue  # a temporary file of a write in progress (renamed into place)
                try:
                    data = f.read_bytes()
                except FileNotFoundError:
                    continue
                try:
                    doc = json.loads(data)
                    off = doc["offset"]
                    assert isinstance(off, int) and not isinstance(off, bool) and off >= 0
                except Exception as e:  # noqa: BLE001
                    self.problems.append(f"{f}: {e!r}: {data[:200]!r}")
                    continue
                key = (tdir.name, int(f.name))
                prev = self.max_committed.get(key, -1)
                if off < prev:
                    self.problems.append(f"{f}: committed offset went back from {prev} to {off}")
                self.max_committed[key] = max(prev, off)
                self.samples += 1


@pytest.mark.slow
def test_group_members_killed_during_commits_and_rebalances(cli, tmp_path):
    seed = BASE_SEED + 4000
    rng = random.Random(seed)
    topic, group, parts = "g", "G", 4
    cli.create(topic, "--partitions", parts, "--config", "segment.bytes=8192")
    # a producer streams keyed records all along
    prod = cli.popen("produce", topic, "--key-separator", "\t", stdin=subprocess.PIPE)
    stop_feed = threading.Event()
    sent = [0]

    def stream():
        try:
            i = 0
            while not stop_feed.is_set():
                n = rng.randint(1, 40)
                prod.stdin.write(b"".join(b"k%d\tg-%07d|%s\n" % (j % 31, j, b"p" * (j % 50))
                                          for j in range(i, i + n)))
                prod.stdin.flush()
                i += n
                sent[0] = i
                time.sleep(0.01)
        finally:
            prod.stdin.close()
    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()

    sampler = Sampler(cli.root / "groups" / group)
    sampler.start()
    outputs: list[Path] = []
    slots: list[subprocess.Popen | None] = [None, None, None]

    def start(slot):
        out = tmp_path / f"member-{len(outputs)}.out"
        outputs.append(out)
        with open(out, "wb") as fo:
            slots[slot] = cli.popen("consume", topic, "--group", group, "--follow", "--format",
                                    FMT, stdout=fo, stderr=subprocess.DEVNULL)

    kills = n_trials(10)
    try:
        with trial(seed, "group kill -9 loop"):
            for s in range(3):
                start(s)
                time.sleep(rng.uniform(0, 0.3))
            for _ in range(kills):
                time.sleep(rng.uniform(0.05, 1.0))
                s = rng.randrange(3)
                kill9(slots[s])
                if rng.random() < 0.7:
                    time.sleep(rng.uniform(0, 0.2))
                start(s)
            time.sleep(rng.uniform(0.2, 1.0))
            for s in range(3):
                kill9(slots[s])
            stop_feed.set()
            streamer.join(10)
            assert prod.wait(120) == 0, prod.stderr.read()
    finally:
        stop_feed.set()
        sampler.stop.set()
        sampler.join(10)

    with trial(seed, "group checks"):
        assert not sampler.problems, sampler.problems[:5]
        assert sampler.samples > 0 and sampler.registry_reads > 0
        log = read_log(cli.root, topic)
        assert sum(len(v) for v in log.values()) == sent[0]
        # committed offsets as the final run finds them
        gdir = cli.root / "groups" / group / "offsets" / topic
        committed = {p: json.loads((gdir / str(p)).read_bytes())["offset"] for p in range(parts)
                     if (gdir / str(p)).exists()}
        chaos: set[tuple[int, int]] = set()
        for out in outputs:
            rows = parse_plo(out.read_bytes(), allow_torn=True)  # killed mid-write: a torn line
            last: dict[int, int] = {}
            for p, o, v in rows:
                assert o < len(log[p]) and log[p][o].value == v, \
                    f"{out.name}: printed {p}/{o} {v[:40]!r}, which is not that record"
                assert o > last.get(p, -1), f"{out.name}: partition {p}: offset {o} after {last[p]}"
                last[p] = o
                chaos.add((p, o))
        # no committed offset beyond what was delivered (at least once)
        seen = [(p, c) for (_t, p), c in sampler.max_committed.items()] + list(committed.items())
        for p, c in seen:
            missing = [o for o in range(c) if (p, o) not in chaos]
            assert not missing, f"partition {p}: committed {c}, but offsets {missing[:10]} were " \
                                f"never delivered"
        # the final run: exactly from the committed offsets to the end, then it exits 0
        cp = cli("consume", topic, "--group", group, "--format", FMT, timeout=120)
        final = by_partition(parse_plo(cp.stdout))
        for p in range(parts):
            start_at = committed.get(p, 0)
            assert [o for o, _ in final.get(p, [])] == list(range(start_at, len(log[p]))), \
                f"partition {p}: final run from {start_at}"
            assert [v for _, v in final.get(p, [])] == [r.value for r in log[p][start_at:]]
            chaos |= {(p, o) for o, _ in final.get(p, [])}
        # every record was delivered at least once
        everything = {(p, r.offset) for p, recs in log.items() for r in recs}
        assert everything <= chaos, f"never delivered: {sorted(everything - chaos)[:10]}"
        d = json.loads(cli("group", "describe", group, "--json").stdout)
        assert d["members"] == []
        assert {r["partition"]: r["committed"] for r in d["partitions"]} == \
            {p: len(log[p]) for p in range(parts)}
        reg = json.loads((cli.root / "groups" / group / "registry.json").read_bytes())
        assert reg["members"] == {}
        leftovers = list((cli.root / "groups").rglob("*.tmp.*"))
        print(f"\ngroup kill loop: {kills} kills, {len(outputs)} members, {sampler.samples} offset "
              f"samples, {sampler.registry_reads} registry reads, {len(leftovers)} temp files left")
        assert not leftovers, leftovers[:5]  # the final run removed what killed members left


COMMITTER = r'''
import sys
from fslog.groups.registry import Registry
reg = Registry(sys.argv[1], sys.argv[2])
i = 0
while True:
    i += 1
    reg.commit("t", 0, i, "m")
    def change(state, i=i):
        state["counter"] = i
        return True
    reg.update(change)
    sys.stdout.write("%d\n" % i)
    sys.stdout.flush()
'''


@pytest.mark.slow
def test_kill9_in_a_tight_loop_of_commits_and_registry_updates(cli, tmp_path):
    """Kill -9 lands in the middle of the atomic writes themselves: the files are always
    whole, and hold the last value written or the one being written."""
    root = str(cli.root)
    fslog.Log(root)
    for i in range(n_trials(5)):
        seed = BASE_SEED + 5000 + i
        rng = random.Random(seed)
        group = f"c{i}"
        gdir = cli.root / "groups" / group
        sampler = Sampler(gdir)
        child = subprocess.Popen([sys.executable, "-c", COMMITTER, root, group],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        cli.procs.append(child)
        with trial(seed, f"commit loop {i}"):
            wait_for(lambda: child.stdout.readline() or child.poll() is not None, timeout=120,
                     what="the first commit")
            sampler.start()
            time.sleep(rng.uniform(0.05, 0.5))
            kill9(child)
            sampler.stop.set()
            sampler.join(10)
            lines = child.stdout.read().split()
            last = int(lines[-1]) if lines else 1
            assert not sampler.problems, sampler.problems[:5]
            off = json.loads((gdir / "offsets" / "t" / "0").read_bytes())["offset"]
            counter = json.loads((gdir / "registry.json").read_bytes())["counter"]
            assert off in (last, last + 1), (off, last)
            assert counter in (last, last + 1) and counter <= off, (counter, off, last)
            # the group is usable afterwards
            d = json.loads(cli("group", "describe", group, "--json").stdout)
            assert d["members"] == []
            # the next run removes the temp file a kill between write and rename left
            from fslog.groups.registry import Registry
            Registry(root, group).commit("t", 0, off, "m")
            assert not list(gdir.rglob("*.tmp.*")), list(gdir.rglob("*.tmp.*"))


# ---------------------------------------------------------------- hostile input in a torn tail
def _batch_without_newline(base_offset: int) -> bytes:
    """A complete, CRC-valid RecordBatch with no newline byte in it: a line of input."""
    for i in range(10000):
        b = rb.encode_values([b"forged-%d" % i], 1_700_000_000_000 + i)
        rb.set_base_offset(b, base_offset)
        if b"\n" not in b:
            return bytes(b)
    raise AssertionError("no newline-free batch found")


@pytest.mark.parametrize("forged_offset, cut", [
    (0, "after"), (1, "after"),  # offsets already in the log
    (2, "after"), (1 << 40, "after"),  # offsets the log could go on with
    (2, "at-end"), (1 << 40, "at-end"),  # the file ends exactly with the forged batch
    (2, "in-header"),  # the write was cut inside the real batch's header
])
def test_torn_tail_whose_value_holds_a_batch_is_repaired_by_the_next_writer(cli, forged_offset, cut):
    """A producer killed -9 while writing a record whose bytes (hostile input) hold a whole
    CRC-valid RecordBatch leaves a torn tail like any other: readers skip it, verify calls
    it a torn tail, the next writer truncates it and goes on. (Found wedging the partition:
    the forged batch was taken for valid data after damage, so the writer refused to
    truncate and every reader failed.)"""
    cli.append("h", b"first")  # offset 0; the hostile record gets offset 1 (set-up: the
    forged = _batch_without_newline(forged_offset)  # library writes what produce would)
    cli.append("h", b"A" * 40 + forged + b"B" * 40)
    seg = cli.segments("h")[-1]
    data = seg.read_bytes()
    start = rb.read_header(data, 0).size  # the hostile record's batch
    # kill -9 in the middle of writing that batch leaves a prefix of it
    at = data.rindex(forged) + len(forged)
    cut_at = {"after": at + 10, "at-end": at, "in-header": start + 30}[cut]
    assert start < cut_at < len(data)
    os.truncate(seg, cut_at)
    cp = cli("consume", "h", check=None)
    assert (cp.returncode, cp.stdout) == (0, b"first\n"), cp.stderr
    assert verify_torn_tail_only(cli, "h") == 1
    cli("produce", "h", input=b"next\n")  # the next writer repairs the torn tail
    assert cli("consume", "h").stdout == b"first\nnext\n"
    cli("verify", "h")


# ---------------------------------------------------------------- a follower during a repair
def _mapped_length(pid: int, path: str) -> int:
    total = 0
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                if line.rstrip().endswith(path):
                    a, b = line.split()[0].split("-")
                    total = max(total, int(b, 16) - int(a, 16))
    except FileNotFoundError:
        pass
    return total


def test_follower_survives_the_repair_of_a_long_torn_tail(cli, tmp_path):
    """A follower maps a long torn tail; the next writer truncates it and writes a shorter
    batch; the follower looks while that write is in progress (the new batch's header is
    in the file, its end is not, yet it ends before the follower's stale map size). It
    must not touch pages past the end of the file (SIGBUS): it waits, then prints it."""
    cli.create("s")
    cli.produce("s", b"".join(b"%03d|" % i + b"a" * 96 + b"\n" for i in range(10)))
    seg = cli.segments("s")[-1]
    good = seg.stat().st_size
    follower = Follower(cli, "s", tmp_path / "s.out")
    wait_for(lambda: follower.lines() == 10, timeout=120, what="the first 10 records")
    # a producer killed -9 in the middle of writing a 40 KB batch left a prefix of it
    torn = rb.encode_values([b"t" * 1000 for _ in range(40)], int(time.time() * 1000))
    rb.set_base_offset(torn, 10)
    with open(seg, "ab") as f:
        f.write(bytes(torn[:30000]))
    # the follower saw it (not yet written: no record) and maps the whole file
    wait_for(lambda: _mapped_length(follower.p.pid, str(seg)) >= good + 30000, timeout=120,
             what="the follower to map the torn tail")
    assert follower.lines() == 10
    # the next writer truncates the torn tail and writes a 12 KB batch; we look at the moment
    # its first page is in the file and the rest is still being copied
    new = rb.encode_values([b"n" * 1000 for _ in range(12)], int(time.time() * 1000))
    rb.set_base_offset(new, 10)
    first = 4096 - good % 4096 + 100
    follower.p.send_signal(signal.SIGSTOP)
    try:
        fd = os.open(seg, os.O_WRONLY)
        try:
            os.ftruncate(fd, good)
            os.pwrite(fd, bytes(new[:first]), good)
        finally:
            os.close(fd)
    finally:
        follower.p.send_signal(signal.SIGCONT)
    # the follower wakes (inotify, or its 2 s cap) and reads the file mid-write: it either
    # dies or sees the file changed (and remaps it); with neither, go on after 6 s
    mapped = good + 30000
    try:
        wait_for(lambda: follower.p.poll() is not None or
                 _mapped_length(follower.p.pid, str(seg)) < mapped, timeout=6, interval=0.01)
    except AssertionError:
        pass
    with open(seg, "ab") as f:
        f.write(bytes(new[first:]))  # the write completes
    wait_for(lambda: follower.p.poll() is not None or follower.lines() == 22, timeout=120,
             what="the follower to print the new batch")
    follower.check_alive()
    rows = parse_plo(follower.out.read_bytes())
    assert [o for _, o, _ in rows] == list(range(22))
