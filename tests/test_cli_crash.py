"""Producers that die: kill -9 while idle on an open pipe, kill -9 in the middle of a large
input, SIGTERM; and concurrent producers. The log must stay readable, verify clean (after
the next writer), with dense offsets and no lost acknowledged records."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

from conftest import stderr_lines, wait_for


def _visible(cli, topic, expect: bytes):
    def check():
        cp = cli("consume", topic, check=None)
        return cp.returncode == 0 and cp.stdout == expect
    return check


def test_kill9_idle_producer_keeps_visible_records(cli):
    cli.create("t", "--config", "segment.bytes=4096")
    prod = cli.popen("produce", "t", stdin=subprocess.PIPE)
    part = cli.log().topic("t").partition(0)
    sent = b""
    for round_ in range(3):
        chunk = b"".join(b"r%d-%04d\n" % (round_, i) for i in range(150))
        prod.stdin.write(chunk)
        prod.stdin.flush()
        sent += chunk
        want = 150 * (round_ + 1)
        # appended while the producer waits for more input (stdin stays open): an idle
        # producer does not sit on records (how fast is for scripts/bench, not a test)
        wait_for(lambda: part.end_offset() == want, timeout=60, interval=0.001,
                 what="records to become visible")
        wait_for(_visible(cli, "t", sent), timeout=60, what="fslog consume to show them")
    prod.kill()
    prod.wait(timeout=60)
    assert prod.returncode == -signal.SIGKILL

    assert cli("consume", "t").stdout == sent
    cp = cli("verify")
    assert b"450 records" in cp.stderr
    # the dead producer's lock does not block the next one
    cli("produce", "t", input=b"after\n", timeout=20)
    recs = cli.records("t")
    assert [r.offset for r in recs] == list(range(451))
    assert recs[-1].value == b"after"
    cli("verify")


def test_kill9_during_large_input_leaves_clean_prefix(cli):
    cli.create("t", "--config", "segment.bytes=4096")
    lines = [b"line-%06d-%s" % (i, b"x" * (i % 37)) for i in range(200_000)]
    data = b"\n".join(lines) + b"\n"
    prod = cli.popen("produce", "t", stdin=subprocess.PIPE)
    # the last line is held back until after the kill: the producer is killed alive, in
    # the middle of its input, however fast or busy the machine
    rest = threading.Event()
    held = len(lines[-1]) + 1

    def feed():
        try:
            prod.stdin.write(data[:-held])
            prod.stdin.flush()
            rest.wait(120)
            prod.stdin.write(data[-held:])
            prod.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass

    th = threading.Thread(target=feed, daemon=True)
    th.start()
    part = cli.partition_dir("t")
    # wait until it is writing, then kill it in the middle of its work
    wait_for(lambda: any(p.stat().st_size for p in part.glob("*.log")), timeout=120,
             interval=0.002, what="the producer's first append")
    time.sleep(0.2)  # a random moment: whatever it is doing then
    prod.kill()
    prod.wait(timeout=60)
    rest.set()
    th.join(timeout=60)
    assert prod.returncode == -signal.SIGKILL

    cp = cli("consume", "t")
    got = cp.stdout.split(b"\n")
    assert got[-1] == b""
    got = got[:-1]
    assert 0 < len(got) < len(lines)
    assert got == lines[:len(got)], "consume output is not a prefix of the input"

    cp = cli("verify", check=None)
    assert cp.returncode in (0, 1)
    if cp.returncode == 1:  # only a torn tail is acceptable
        probs = json.loads(cli("verify", "--json", check=1).stdout)["topics"][0]["problems"]
        assert {p["kind"] for p in probs} == {"torn-tail"}, probs

    cli("produce", "t", input=b"next-1\nnext-2\n")
    cli("verify")
    recs = cli.records("t")
    assert [r.offset for r in recs] == list(range(len(got) + 2))
    assert [r.value for r in recs] == got + [b"next-1", b"next-2"]


def test_sigterm_flushes_and_exits_0(cli):
    prod = cli.popen("produce", "t", stdin=subprocess.PIPE)
    prod.stdin.write(b"a\nb\n")
    prod.stdin.flush()
    wait_for(_visible(cli, "t", b"a\nb\n"), timeout=60, what="a, b")
    prod.stdin.write(b"c\nd\n")
    prod.stdin.flush()
    time.sleep(0.05)
    prod.send_signal(signal.SIGTERM)
    out, err = prod.communicate(timeout=60)
    assert prod.returncode == 0, err
    assert out == b""
    assert b"Traceback" not in err
    assert cli("consume", "t").stdout == b"a\nb\nc\nd\n"
    cli("verify")


def test_concurrent_producers(cli):
    cli.create("t", "--config", "segment.bytes=4096")
    n = 4000
    inputs = {w: b"".join(b"%s-%05d\n" % (w, i) for i in range(n)) for w in (b"A", b"B", b"C")}
    procs = {w: cli.popen("produce", "t", stdin=subprocess.PIPE) for w in inputs}
    for w, p in procs.items():
        p.stdin.write(inputs[w])
        p.stdin.close()
    for p in procs.values():
        assert p.wait(timeout=60) == 0, p.stderr.read()
    recs = cli.records("t")
    assert [r.offset for r in recs] == list(range(3 * n))
    for w in inputs:
        mine = [r.value for r in recs if r.value.startswith(w + b"-")]
        assert mine == [b"%s-%05d" % (w, i) for i in range(n)]
    cli("verify")


def test_damaged_last_batch_is_truncated_and_reported(cli):
    """A last batch of the active segment that is complete but fails its CRC is what a
    power loss (or a flipped bit) leaves; the next writer cuts it, as Kafka's recovery
    does, and says so: data loss is never silent."""
    for run in range(3):
        cli.produce("t", b"".join(b"run%d-%d\n" % (run, i) for i in range(10)))
    seg = cli.segments("t")[0]
    data = bytearray(seg.read_bytes())
    data[-20] ^= 0x01
    seg.write_bytes(bytes(data))
    assert len(cli.values("t")) == 20  # readers: not yet written, never damaged data
    doc = json.loads(cli("verify", "--json", check=1).stdout)
    [p] = doc["topics"][0]["problems"]
    assert p["kind"] == "torn-tail" and p["offset"] == 20 and "damage" in p["message"]
    cp = cli.produce("t", b"new\n")
    [line] = stderr_lines(cp)
    assert "t/0: truncated" in line and f"of {seg}" in line and "from offset 20" in line
    assert cli.values("t")[20:] == [b"new"]
    cli("verify")


def test_bad_default_partitions_variable_is_one_clear_line(cli):
    cp = cli("produce", "t", input=b"x\n", env={"FSLOG_DEFAULT_PARTITIONS": "abc"}, check=1)
    assert stderr_lines(cp) == ["fslog: FSLOG_DEFAULT_PARTITIONS='abc': expected a whole number "
                                "of at least 1 (the partitions of a topic that producing creates)"]
