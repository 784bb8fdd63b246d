"""``fslog clean`` and ``fslog topic alter`` through the real command line: retention and
compaction as users run them, groups behind the log start, kill -9 during a clean, and
cleaning while a producer and a follower run. Tiny segments throughout."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import read_lines_until, stderr_lines
from kafka_judge import kafka_records

from fslog.storage import cleaner

TINY = ["--config", "segment.bytes=1024", "--config", "index.interval.bytes=128"]


def lines(n, prefix="r", width=60):
    return b"".join(b"%s%05d%s\n" % (prefix.encode(), i, b"." * width) for i in range(n))


def keyed_lines(n, keys):
    return b"".join(b"k%03d:v%05d\n" % (i % keys, i) for i in range(n))


def by_offset(cli, topic="t"):
    return {r.offset: (r.key, r.value) for r in cli.records(topic)}


def test_clean_json_deletes_by_size_and_moves_the_log_start(cli):
    cli.create("t", *TINY, "--config", "retention.ms=-1")
    cli.produce("t", lines(300))
    before = json.loads(cli("topic", "describe", "t", "--json").stdout)["partitions"][0]
    assert before["start_offset"] == 0 and before["segments"] > 10
    cli("topic", "alter", "t", "--config", "retention.bytes=3000")
    cp = cli("clean", "t", "--json")
    out = json.loads(cp.stdout)
    p = out["partitions"][0]
    assert p["topic"] == "t" and p["partition"] == 0 and p["cleanup_policy"] == "delete"
    assert out["segments_deleted"] == len(p["segments_deleted"]) > 0
    assert all(d["reason"] == "retention.bytes" for d in p["segments_deleted"])
    after = json.loads(cli("topic", "describe", "t", "--json").stdout)["partitions"][0]
    assert after["start_offset"] == p["start_offset"] > 0
    assert after["end_offset"] == 300
    assert after["size_bytes"] >= 3000
    assert [r.offset for r in cli.records("t")] == list(range(after["start_offset"], 300))
    # plain output: one line per partition that changed, and a summary, on stderr
    cp = cli("clean")
    assert cp.stdout == b""
    assert stderr_lines(cp)[-1].startswith("fslog: cleaned 1 partition(s) of 1 topic(s)")
    cli("verify")


def test_topic_alter_validates_and_describe_shows_it(cli):
    cli.create("t")
    cp = cli("topic", "alter", "t", "--config", "retention.secs=5", check=1)
    assert "unknown config key 'retention.secs'" in cp.stderr.decode()
    assert "retention.ms" in cp.stderr.decode() and "cleanup.policy" in cp.stderr.decode()
    cp = cli("topic", "alter", "t", "--config", "cleanup.policy=shred", check=1)
    assert "compact" in cp.stderr.decode()
    cp = cli("topic", "alter", "t", "--config", "retention.ms=soon", check=1)
    assert "retention.ms" in cp.stderr.decode()
    cli("topic", "alter", "t", check=1)
    cli("topic", "alter", "nope", "--config", "retention.ms=1", check=1)
    cli("topic", "alter", "t", "--config", "retention.ms=3600000", "--config", "cleanup.policy=compact,delete")
    d = json.loads(cli("topic", "describe", "t", "--json").stdout)
    assert d["overrides"] == {"retention.ms": 3600000, "cleanup.policy": "compact,delete"}
    assert d["config"]["retention.ms"] == 3600000
    cli("topic", "alter", "t", "--delete-config", "retention.ms")
    d = json.loads(cli("topic", "describe", "t", "--json").stdout)
    assert d["overrides"] == {"cleanup.policy": "compact,delete"}
    assert d["config"]["retention.ms"] == 7 * 86_400_000
    assert "dirty_ratio" in d["partitions"][0]
    table = cli("topic", "describe", "t").stdout.decode()
    assert "DIRTY RATIO" in table and "cleanup.policy\tcompact,delete\ttopic" in table


def test_group_behind_retention_warns_and_continues(cli):
    cli.create("t", *TINY, "--config", "retention.ms=-1")
    cli.produce("t", lines(100))
    cp = cli("consume", "t", "--group", "nightly", "--max-messages", "10")
    assert len(cp.stdout.splitlines()) == 10
    cli.produce("t", lines(200, prefix="s"))
    cli("topic", "alter", "t", "--config", "retention.bytes=2000")
    cli("clean", "t")
    start = cli.log().topic("t").partition(0).start_offset()
    assert start > 10
    cp = cli("consume", "t", "--group", "nightly", timeout=30)
    warn = [x for x in stderr_lines(cp) if "deleted by retention" in x]
    assert len(warn) == 1, stderr_lines(cp)
    assert f"{start - 10} records (offsets 10..{start - 1})" in warn[0] and "nightly" in warn[0]
    assert len(cp.stdout.splitlines()) == 300 - start
    cp = cli("consume", "t", "--group", "nightly", timeout=30)  # the next run: nothing left
    assert cp.stdout == b"" and cp.stderr == b""
    g = json.loads(cli("group", "describe", "nightly", "--json").stdout)
    assert g["partitions"][0]["lag"] == 0
    # a plain reader asking for an offset below the start is told so too, once
    cp = cli("consume", "t", "--offset", "3")
    assert any("deleted by retention" in x for x in stderr_lines(cp))
    assert len(cp.stdout.splitlines()) == 300 - start


def test_compaction_through_the_cli_with_tombstones(cli):
    # (ratio 1.0: no compaction in the background, whose timing would decide what is
    # left for --compact-now)
    cli.create("t", *TINY, "--config", "cleanup.policy=compact",
               "--config", "min.cleanable.dirty.ratio=1.0")
    cp = cli("produce", "t", input=b"no key here\n", check=1)
    assert "compacted" in cp.stderr.decode() and "--key-separator" in cp.stderr.decode()
    data = keyed_lines(300, 10) + b"k003:NULL\n" + b"k004:NULL\n" + keyed_lines(60, 3)
    cli.produce("t", data, "--key-separator", ":", "--null-marker", "NULL")
    before = by_offset(cli)
    cp = cli("clean", "t", "--compact-now", "--json")
    c = json.loads(cp.stdout)["partitions"][0]["compaction"]
    assert c["ran"] and c["records_removed"] > 0
    after = by_offset(cli)
    active = cli.log().topic("t").partition(0).segment_bases()[-1]
    sealed_keys = [k for o, (k, _v) in after.items() if o < active]
    assert len(sealed_keys) == len(set(sealed_keys))  # one record per key in the sealed part
    assert all(before[o] == kv for o, kv in after.items())
    vals = {}
    for o in sorted(after):
        vals[after[o][0]] = after[o][1]
    assert vals[b"k003"] is None and vals[b"k004"] is None  # tombstones kept (young)
    js = [json.loads(x) for x in cli("consume", "t", "--format", "json").stdout.splitlines()]
    assert {"key": "k003", "value": None}.items() <= next(
        j for j in js if j["key"] == "k003" and j["value"] is None).items()
    # offsets are the original ones, in order
    assert [j["offset"] for j in js] == sorted(after)
    # tombstones go once older than delete.retention.ms (and the next compaction runs)
    cli("topic", "alter", "t", "--config", "delete.retention.ms=0")
    time.sleep(0.01)
    cli("clean", "t", "--compact-now")
    final = by_offset(cli)
    assert not any(v is None for o, (k, v) in final.items() if o < active)
    for path in cli.segments("t"):
        kafka_records(path.read_bytes())
    cli("verify")


def _leftovers(cli, topic="t"):
    return [p.name for p in cli.partition_dir(topic).iterdir()
            if p.name.endswith((".cleaned", ".swap.json"))]


# Runs ``fslog ARGS...`` in a process that kills itself (SIGKILL: as kill -9, no cleanup,
# no buffered write flushed) at the N-th call of os.WHAT: a crash at a chosen point of
# the clean, the same on a fast or a busy machine.
_KILL_AT = """
import os, signal, sys
what, n = sys.argv[1], int(sys.argv[2])
real = getattr(os, what)
calls = 0
def crash(*args, **kwargs):
    global calls
    calls += 1
    if calls == n:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(os, what, crash)
sys.argv = ["fslog"] + sys.argv[3:]
from fslog.cli.main import run
run()
"""

# (os function, which call) to die at: while the .cleaned segment is written, at its
# fsync, at each rename of the swap, at the deletions after it
_KILL_POINTS = [("write", 2), ("write", 4), ("fsync", 1), ("fsync", 4), ("replace", 1),
                ("replace", 2), ("replace", 3), ("replace", 5), ("unlink", 1), ("unlink", 4)]


@pytest.mark.slow
def test_kill9_during_clean_leaves_old_or_new(cli):
    cli.create("t", "--config", "segment.bytes=4096", "--config", "index.interval.bytes=256",
               "--config", "cleanup.policy=compact", "--config", "min.cleanable.dirty.ratio=1")
    n = 0
    cut_in_the_middle = 0  # kills that left a half-done swap or a half-written segment
    for trial, (what, at) in enumerate(_KILL_POINTS):
        cli.produce("t", keyed_lines(3000, 50 + trial), "--key-separator", ":")
        n += 3000
        before = by_offset(cli)
        left_before = set(_leftovers(cli))  # a kill before the next clean's recovery keeps them
        cp = subprocess.run([sys.executable, "-c", _KILL_AT, what, str(at), "clean", "t",
                             "--compact-now"], env=cli.env(), capture_output=True, timeout=120)
        assert cp.returncode == -signal.SIGKILL, \
            f"trial {trial}: the clean ended ({cp.returncode}) before call {at} of os.{what}"
        if set(_leftovers(cli)) - left_before:
            cut_in_the_middle += 1
        mid = by_offset(cli)
        assert all(before[o] == kv for o, kv in mid.items()), f"trial {trial}: a record changed"
        latest = {}
        for o in sorted(before):
            latest[before[o][0]] = o
        assert set(latest.values()) <= set(mid), f"trial {trial}: a latest value was lost"
    assert cut_in_the_middle >= 2, "no kill landed while a clean was writing or swapping"
    cli("clean", "t")  # finishes or rolls back whatever was cut short
    assert _leftovers(cli) == []
    cli("verify", "t")
    final = by_offset(cli)
    assert max(final) == n - 1
    for path in cli.segments("t"):
        kafka_records(path.read_bytes())


def test_clean_while_producer_and_follower_run(cli):
    cli.create("t", "--config", "segment.bytes=2048", "--config", "index.interval.bytes=256",
               "--config", "cleanup.policy=compact", "--config", "min.cleanable.dirty.ratio=0.3")
    follower = cli.popen("consume", "t", "--follow", "--format", "%o %k %s\\n")
    producer = cli.popen("produce", "t", "--key-separator", ":", "--linger-ms", "1",
                         stdin=subprocess.PIPE)
    total = 4000
    done = threading.Event()

    def cleaner_loop():
        while not done.is_set():
            cli("clean", "t", "--compact-now", timeout=60)

    th = threading.Thread(target=cleaner_loop)
    th.start()
    try:
        data = keyed_lines(total, 40).splitlines(keepends=True)
        for i in range(0, total, 100):
            producer.stdin.write(b"".join(data[i:i + 100]))
            producer.stdin.flush()
            time.sleep(0.01)
        producer.stdin.close()
        assert producer.wait(timeout=60) == 0, producer.stderr.read()
    finally:
        done.set()
        th.join()
    # the last record is the latest of its key: no clean removes it; the follower ends there
    got = read_lines_until(follower, lambda lines: lines and lines[-1].startswith(b"%d " % (total - 1)))
    follower.send_signal(signal.SIGTERM)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0 and out == b"", err
    seen = []
    for line in got:
        o, k, v = line.split(b" ")
        seen.append((int(o), k, v))
    offsets = [o for o, _k, _v in seen]
    assert offsets == sorted(set(offsets)), "the follower saw a record twice or out of order"
    expected = {i: (b"k%03d" % (i % 40), b"v%05d" % i) for i in range(total)}
    assert all(expected[o] == (k, v) for o, k, v in seen)
    # the follower may miss superseded records the cleaner removed first, never a latest one
    latest = {}
    for i in range(total):
        latest[i % 40] = i
    assert set(latest.values()) <= set(offsets)
    final = by_offset(cli)
    assert all(expected[o] == kv for o, kv in final.items())
    assert set(latest.values()) <= set(final)
    cli("clean", "t")
    cli("verify", "t")


def test_cleaner_files_replaced_by_links_are_refused(cli, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    cli.produce("t", b"a\n")
    d = cli.partition_dir("t")
    (d / ".cleaner.lock").symlink_to(outside / "victim")
    cp = cli("clean", check=1)
    assert "symbolic link" in cp.stderr.decode() and ".cleaner.lock" in cp.stderr.decode()
    (d / ".cleaner.lock").unlink()
    (outside / "m.json").write_text('{"base": 0, "end": 1, "replaces": []}')
    (d / "00000000000000000000.swap.json").symlink_to(outside / "m.json")
    cp = cli("clean", check=1)
    assert "symbolic link" in cp.stderr.decode()
    assert sorted(p.name for p in outside.iterdir()) == ["m.json"]
    assert cli.values("t") == [b"a"]


def test_group_reads_a_compacted_topic_to_its_end(cli):
    cli.create("t", *TINY, "--config", "cleanup.policy=compact")
    cli.produce("t", keyed_lines(400, 7), "--key-separator", ":")
    cli("clean", "t", "--compact-now")
    expected = [v for _o, (_k, v) in sorted(by_offset(cli).items())]
    assert len(expected) < 400
    for fmt in ("raw", "json"):
        g = f"g-{fmt}"
        cp = cli("consume", "t", "--group", g, "--format", fmt, timeout=30)
        assert len(cp.stdout.splitlines()) == len(expected)
        # committed at the end of the last batch: the next run has nothing, lag is 0
        assert cli("consume", "t", "--group", g, timeout=30).stdout == b""
        d = json.loads(cli("group", "describe", g, "--json").stdout)
        assert [(p["committed"], p["lag"]) for p in d["partitions"]] == [(400, 0)]
    # --max-messages stops inside a compacted batch and the next run goes on from there
    cp = cli("consume", "t", "--group", "h", "--max-messages", "5")
    rest = cli("consume", "t", "--group", "h").stdout.splitlines()
    assert cp.stdout.splitlines() + rest == expected


def test_verify_reports_and_repairs_what_a_killed_clean_left(cli):
    cli.create("t", *TINY, "--config", "cleanup.policy=compact")
    cli.produce("t", keyed_lines(300, 5), "--key-separator", ":")
    cleaner.wait_for_background(cli.log().topic("t").partition(0))  # rolls compacted
    d = cli.partition_dir("t")
    (d / "00000000000000000000.log.cleaned").write_bytes(b"half a segment")
    doc = json.loads(cli("verify", "--json", check=1).stdout)
    [p] = doc["topics"][0]["problems"]
    assert p["kind"] == "interrupted-clean" and p["path"].endswith(".log.cleaned")
    cp = cli("verify", "--repair")
    assert b"repaired" in cp.stdout
    assert _leftovers(cli) == []
    cli("verify")


def test_a_clean_that_fails_after_a_roll_is_reported_by_produce(cli):
    # an unreadable marker of an interrupted compaction makes every clean refuse the
    # partition; the producer's roll runs one: the records go in, the failure is said
    cli.create("t", *TINY)
    cli.produce("t", lines(5))
    part = cli.log().topic("t").partition(0)
    with open(f"{part.path}/00000000000000000000.swap.json", "wb") as f:
        f.write(b"not json\n")
    cp = cli("produce", "t", input=lines(100))
    err = cp.stderr.decode()
    assert "t/0: the clean after a segment roll failed" in err
    assert "swap.json: unreadable record of an interrupted compaction" in err
    assert "run 'fslog clean t' to retry it" in err
    assert len(cli.records("t")) == 105


def test_a_failed_background_compaction_is_shown_until_a_clean_succeeds(cli):
    cli.create("t", *TINY, "--config", "cleanup.policy=compact")
    cli.produce("t", keyed_lines(300, 5), "--key-separator", ":")
    part = cli.log().topic("t").partition(0)
    cleaner.wait_for_background(part)
    seg = cli.partition_dir("t") / "00000000000000000000.log"
    data = bytearray(seg.read_bytes())
    at = len(data) // 2
    data[at] ^= 0x40  # damage in a sealed segment: every compaction refuses the partition
    seg.write_bytes(bytes(data))
    # rolls start compactions in the background, which fail
    cli.produce("t", keyed_lines(300, 5), "--key-separator", ":")
    cleaner.wait_for_background(part)
    assert cleaner.background_failure(part) is not None
    cp = cli("status", check=1)
    assert "t/0: the background compaction failed at" in cp.stderr.decode()
    assert "run 'fslog verify t', then 'fslog clean t'" in cp.stderr.decode()
    doc = json.loads(cli("status", "--json", check=1).stdout)
    [failure] = doc["topics"][0]["compaction_failures"]
    assert failure["partition"] == 0 and "position" in failure["error"]
    doc = json.loads(cli("verify", "--json", check=1).stdout)
    assert "compaction-failed" in [p["kind"] for p in doc["topics"][0]["problems"]]
    cp = cli("produce", "t", "--key-separator", ":", input=b"k1:one more\n")
    assert cp.stderr.decode().count("warning: t/0: the background compaction failed") == 1
    # the damage undone, a clean compacts and the failure is gone everywhere
    data[at] ^= 0x40
    seg.write_bytes(bytes(data))
    cleaner.wait_for_background(part)
    cli("clean", "t", "--compact-now")
    assert cleaner.background_failure(part) is None
    cli("status")
    assert b"background compaction" not in cli("produce", "t", "--key-separator", ":",
                                                  input=b"k1:again\n").stderr


def test_top_shows_a_failed_background_compaction(cli):
    cli.create("t", *TINY, "--config", "cleanup.policy=compact")
    cli.produce("t", keyed_lines(50, 5), "--key-separator", ":")
    part = cli.log().topic("t").partition(0)
    cleaner.wait_for_background(part)
    cli("top", "--once", "--interval", "0.05")  # nothing failed: exit 0
    cleaner._record_failure(str(cli.partition_dir("t")), "position 42: CRC mismatch")
    cp = cli("top", "--once", "--interval", "0.05", check=1)
    assert "t/0: the background compaction failed at" in cp.stderr.decode()
    assert "position 42: CRC mismatch" in cp.stderr.decode()
    doc = json.loads(cli("top", "--once", "--json", "--interval", "0.05", check=1).stdout)
    [failure] = doc["topics"][0]["compaction_failures"]
    assert failure["partition"] == 0 and "CRC mismatch" in failure["error"]
    assert any("background compaction failed" in p for p in doc["problems"])
    cli("clean", "t", "--compact-now")  # a compaction that succeeds clears it
    doc = json.loads(cli("top", "--once", "--json", "--interval", "0.05").stdout)
    assert doc["topics"][0]["compaction_failures"] == [] and not doc["problems"]
