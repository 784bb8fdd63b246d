"""``fslog consume``: output formats, start positions, limits, --follow, signals, pipes."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import time
from datetime import datetime, timezone

import pytest
from conftest import FSLOG_CMD, read_lines_until, stderr_lines

P0 = [b"p0-%03d" % i for i in range(300)]
P1 = [b"p1-%d" % i for i in range(5)]


@pytest.fixture
def topic3(cli):
    """Topic t: partition 0 holds 300 records over several 4 KiB segments, partition 1
    holds 5, partition 2 is empty. (Set up through the library: these tests are about
    reading.)"""
    log = cli.log()
    log.create_topic("t", partitions=3, config={"segment.bytes": 4096})
    with log.producer("t", batch_bytes=1024) as p:
        p.send_values(P0, partition=0)
        p.send_values(P1, partition=1)
    assert len(cli.segments("t", 0)) > 1
    return "t"


def lines_of(cp) -> list[bytes]:
    return cp.stdout.splitlines()


def check_many(cli, cases):
    """cases: [(consume args, expected lines of '%p@%o %s', or a predicate on them)], run
    concurrently."""
    results = cli.run_many([["consume", "t", "--format", "%p@%o %s", *args] for args, _ in cases])
    for (args, expected), cp in zip(cases, results):
        assert cp.stderr == b"", (args, cp.stderr)
        got = cp.stdout.decode().splitlines()
        if callable(expected):
            assert expected(got), (args, got)
        else:
            assert got == expected, args


# ------------------------------------------------------------------ formats
def test_json_format_fields(cli):
    before = int(time.time() * 1000)
    cli("produce", "t", "--key-separator", ":", "--header", "h=1", "--header", b"bin=\xff",
        input=b"k:v\n\xffkey:\xfe\xfdval\nnull:\n")
    after = int(time.time() * 1000)
    cp = cli("consume", "t", "--format", "json")
    assert cp.stderr == b""
    docs = [json.loads(l) for l in cp.stdout.splitlines()]
    assert len(docs) == 3
    d0, d1, d2 = docs
    assert list(d0) == ["topic", "partition", "offset", "timestamp", "key", "value", "headers"]
    assert before <= d0["timestamp"] <= after
    hdrs = [{"key": "h", "value": "1"},
            {"key": "bin", "value": base64.b64encode(b"\xff").decode(), "encoding": "base64"}]
    assert d0 == {"topic": "t", "partition": 0, "offset": 0, "timestamp": d0["timestamp"],
                  "key": "k", "value": "v", "headers": hdrs}
    assert d1 == {"topic": "t", "partition": 0, "offset": 1, "timestamp": d1["timestamp"],
                  "key": base64.b64encode(b"\xffkey").decode(), "key_encoding": "base64",
                  "value": base64.b64encode(b"\xfe\xfdval").decode(), "value_encoding": "base64",
                  "headers": hdrs}
    assert d2["key"] == "null" and d2["value"] == ""
    assert base64.b64decode(d1["value"]) == b"\xfe\xfdval"


def test_json_format_plain_records(cli):
    cli.produce("t", "ünïcode \"quoted\" \\ tab\t\n".encode() + b"a\r\n")
    docs = [json.loads(l) for l in cli("consume", "t", "--format", "json").stdout.splitlines()]
    assert [(d["key"], d["value"], d["headers"]) for d in docs] == [
        (None, "ünïcode \"quoted\" \\ tab\t", []), (None, "a\r", [])]
    assert "value_encoding" not in docs[0]


def test_template_format(cli):
    cli("produce", "t", "--key-separator", "=", "--header", "a=1", "--header", "b=2",
        input=b"key=value\n=nokey\n")
    cp = cli("consume", "t", "--format", "%t/%p@%o %k %s")
    assert cp.stdout == b"t/0@0 key value\nt/0@1  nokey\n"
    cp = cli("consume", "t", "--format", r"%K|%S|%h|%%|\t|%s\n")
    assert cp.stdout == b"3|5|a=1,b=2|%|\t|value\n0|5|a=1,b=2|%|\t|nokey\n"
    ts = cli.records("t")[0].timestamp
    assert cli("consume", "t", "--format", "%T", "--max-messages", "1").stdout == b"%d\n" % ts


def test_raw_format_is_default(topic3, cli):
    cp = cli("consume", "t")
    assert cp.stderr == b""
    got = lines_of(cp)
    assert sorted(got) == sorted(P0 + P1)
    # order within a partition is kept
    assert [l for l in got if l.startswith(b"p0")] == P0
    assert [l for l in got if l.startswith(b"p1")] == P1


# ------------------------------------------------------------------ where to start
def test_partition_and_offset(topic3, cli):
    check_many(cli, [
        (["--partition", "1"], [f"1@{i} p1-{i}" for i in range(5)]),
        (["--partition", "1", "--offset", "3"], ["1@3 p1-3", "1@4 p1-4"]),
        (["--partition", "0", "--offset", "250", "-m", "2"], ["0@250 p0-250", "0@251 p0-251"]),
        (["--partition", "1", "--offset", "5"], []),  # the log-end offset: nothing yet
        (["--partition", "2"], []),
        (["--partition", "1", "--offset", "beginning"], [f"1@{i} p1-{i}" for i in range(5)]),
        (["-p", "0", "-o", "0"], [f"0@{i} p0-{i:03d}" for i in range(300)]),
    ])


def test_start_positions(topic3, cli):
    everything = sorted([f"0@{i} p0-{i:03d}" for i in range(300)] + [f"1@{i} p1-{i}" for i in range(5)])
    check_many(cli, [
        (["--offset", "end"], []),
        (["--offset", "-2"], lambda got: sorted(got) == ["0@298 p0-298", "0@299 p0-299", "1@3 p1-3", "1@4 p1-4"]),
        (["--offset", "-2", "--partition", "1"], ["1@3 p1-3", "1@4 p1-4"]),
        (["--offset", "-50", "--partition", "1"], [f"1@{i} p1-{i}" for i in range(5)]),
        (["--last", "1"], lambda got: sorted(got) == ["0@299 p0-299", "1@4 p1-4"]),
        (["-n", "3", "--partition", "0"], ["0@297 p0-297", "0@298 p0-298", "0@299 p0-299"]),
        (["--last", "0"], []),
        (["--from-beginning"], lambda got: sorted(got) == everything),
        ([], lambda got: sorted(got) == everything),
    ])


def test_max_messages(topic3, cli):
    check_many(cli, [
        (["--partition", "0", "--max-messages", "3"], ["0@0 p0-000", "0@1 p0-001", "0@2 p0-002"]),
        (["-m", "250"], lambda got: len(got) == 250),
        (["--max-messages", "0"], []),
        (["--max-messages", "100000"], lambda got: len(got) == 305),
    ])
    got = [json.loads(l) for l in cli("consume", "t", "--format", "json", "-m", "7").stdout.splitlines()]
    assert len(got) == 7


def test_offset_errors(topic3, cli):
    cases = [["--partition", "1", "--offset", "6"], ["--offset", "abc"], ["--partition", "3"],
             ["--offset", "1", "--last", "2"], ["--last", "1", "--from-time", "1h"],
             ["--from-beginning", "--offset", "2"]]
    results = cli.run_many([["consume", "t", *c] for c in cases], check=None)
    # past the end or a missing partition: an error (1); the rest: wrong usage (2)
    assert [cp.returncode for cp in results] == [1, 2, 1, 2, 2, 2]
    for c, cp in zip(cases, results):
        assert len(stderr_lines(cp)) == 1 and cp.stdout == b"", c
    msgs = [stderr_lines(cp)[0] for cp in results]
    assert "offset 6" in msgs[0] and "log-end offset 5" in msgs[0]
    assert "--offset 'abc'" in msgs[1]
    assert msgs[2] == "fslog: --partition 3: topic 't' has partitions 0..2"


def test_from_time(cli):
    cli.create("t", "--config", "segment.bytes=4096")
    cli.produce("t", b"".join(b"old-%03d\n" % i for i in range(600)))
    time.sleep(0.05)
    cut = datetime.now(timezone.utc)
    time.sleep(0.05)
    cli.produce("t", b"".join(b"new-%03d\n" % i for i in range(600)))
    assert len(cli.segments("t")) > 2

    future, hour, mid = cli.run_many([
        ["consume", "t", "--from-time", "2999-01-01T00:00:00Z"],
        ["consume", "t", "--from-time", "1h"],
        ["consume", "t", "--from-time", cut.isoformat(timespec="milliseconds")]])
    assert future.stdout == b"" and future.stderr == b""
    assert len(lines_of(hour)) == 1200
    assert lines_of(mid) == [b"new-%03d" % i for i in range(600)]
    cp = cli("consume", "t", "--from-time", "yesterday-ish", check=2)
    assert len(stderr_lines(cp)) == 1 and "yesterday-ish" in stderr_lines(cp)[0]


def test_empty_topic(cli):
    cli.create("e", "--partitions", "2")
    cases = [[], ["--offset", "-2"], ["--last", "3"], ["--from-time", "1h"], ["--offset", "0"],
             ["--offset", "end"], ["--format", "json"]]
    for c, cp in zip(cases, cli.run_many([["consume", "e", *c] for c in cases])):
        assert cp.stdout == b"" and cp.stderr == b"", c


# ------------------------------------------------------------------ --follow
def test_follow_receives_records_from_another_process(cli):
    cli.create("t", "--partitions", "2", "--config", "segment.bytes=4096")
    cli.produce("t", b"before\n", "--partition", "0")
    cons = cli.popen("consume", "t", "--follow", "--format", "%p %s")
    assert read_lines_until(cons, lambda lines: lines) == [b"0 before"]
    lines0 = [b"a-%05d" % i for i in range(3000)]  # rolls segments while followed
    cli.produce("t", b"\n".join(lines0) + b"\n", "--partition", "0")
    cli.produce("t", b"b-1\nb-2\n", "--partition", "1")
    got = read_lines_until(cons, lambda lines: len(lines) == 3002)
    cons.send_signal(signal.SIGTERM)
    out, err = cons.communicate(timeout=60)
    assert cons.returncode == 0 and out == b"", err
    assert b"Traceback" not in err
    assert [l[2:] for l in got if l.startswith(b"0 ")] == lines0
    assert [l[2:] for l in got if l.startswith(b"1 ")] == [b"b-1", b"b-2"]


def test_follow_idle_timeout_on_quiet_topic(cli):
    cli.create("t")
    t0 = time.monotonic()
    cp = cli("consume", "t", "--follow", "--idle-timeout", "0.5")
    took = time.monotonic() - t0
    assert cp.stdout == b""
    assert 0.4 <= took < 60  # (the upper bound only guards against a hang)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_follow_ended_by_signal(cli, sig):
    cli.produce("t", b"one\ntwo\n")
    cons = cli.popen("consume", "t", "--follow")
    assert cons.stdout.readline() == b"one\n"
    assert cons.stdout.readline() == b"two\n"
    cli.produce("t", b"three\n")
    assert cons.stdout.readline() == b"three\n"
    cons.send_signal(sig)
    out, err = cons.communicate(timeout=60)
    assert cons.returncode == 0, err
    assert out == b""
    assert b"Traceback" not in err


def test_follow_from_end_gets_only_new(cli):
    cli.produce("t", b"old\n")
    cons = cli.popen("consume", "t", "--follow", "--offset", "end", "--max-messages", "1")
    # the consumer's start ("end") is fixed some time after it starts: keep producing
    # until one record reaches it
    k = 0
    deadline = time.monotonic() + 120  # only a guard against a hang
    while cons.poll() is None and time.monotonic() < deadline:
        cli.produce("t", b"new-%d\n" % k)
        k += 1
        try:
            cons.wait(timeout=0.3)
        except subprocess.TimeoutExpired:
            pass
    out, err = cons.communicate(timeout=60)
    assert cons.returncode == 0, err
    assert out.startswith(b"new-") and out.count(b"\n") == 1, out


def test_follow_max_messages_exits(cli):
    cli.produce("t", b"x\n")
    cons = cli.popen("consume", "t", "--follow", "--max-messages", "3")
    assert cons.stdout.readline() == b"x\n"
    cli.produce("t", b"y\nz\nw\n")
    out, err = cons.communicate(timeout=20)
    assert cons.returncode == 0, err
    assert out == b"y\nz\n"


# ------------------------------------------------------------------ closed pipe
def _pipe_to_head(cli, *args):
    """Run ``fslog consume ... | head -1`` in bash (no pipefail): (head's output, fslog's
    exit status, fslog's stderr)."""
    import shlex
    errf = cli.root.parent / "consume.err"
    cmd = " ".join(map(shlex.quote, FSLOG_CMD + ["consume", *args]))
    script = f"{cmd} 2>{shlex.quote(str(errf))} | head -1; echo \"rc=${{PIPESTATUS[0]}}\" >&2"
    cp = subprocess.run(["bash", "-c", script], capture_output=True, env=cli.env(), timeout=60)
    rc = int(cp.stderr.decode().strip().rsplit("rc=", 1)[1])
    return cp.stdout, rc, errf.read_bytes()


@pytest.fixture
def big_topic(cli):
    """200k records: far more than a pipe buffer, so the reader of the pipe closes it
    while fslog is still writing."""
    with cli.log().producer("big") as p:
        p.send_values([b"line %d" % i for i in range(200_000)])
    return "big"


@pytest.mark.parametrize("fmt", ["raw", "json", "%o %s"])
def test_closed_pipe_is_quiet(cli, big_topic, fmt):
    # Regression: this used to exit 1 (click turned EPIPE into exit 1 before main.run()
    # could end quietly).
    out, rc, err = _pipe_to_head(cli, "big", "--format", fmt)
    assert out in (b"line 0\n", b"0 line 0\n") or out.startswith(b'{"topic":"big"')
    assert out.count(b"\n") == 1
    assert err == b"", err
    assert rc == 0


def test_several_topics(cli):
    cli.produce("a", b"x\n")
    cli.produce("b", b"y\nz\n")
    assert cli("consume", "a", "b", "--format", "%t %o %s").stdout == b"a 0 x\nb 0 y\nb 1 z\n"
    docs = [json.loads(l) for l in cli("consume", "b", "a", "--format", "json").stdout.splitlines()]
    assert [(d["topic"], d["offset"], d["value"]) for d in docs] == [("b", 0, "y"), ("b", 1, "z"), ("a", 0, "x")]


def test_options_that_need_another_are_usage_errors(cli):
    cli.produce("t", b"a\n")
    for args, needs in ([["--idle-timeout", "1"], "--follow"],
                        [["--session-timeout", "3"], "--group"],
                        [["--retries", "2"], "--exec"]):
        cp = cli("consume", "t", *args, check=2)
        assert stderr_lines(cp) == [f"fslog: {args[0]} needs {needs}" + (
            " (without it, consume stops once caught up)" if needs == "--follow" else
            " CMD" if needs == "--exec" else "")]
        assert cp.stdout == b""
