"""``fslog consume --exec``: a command per record, committed only after it succeeded.

Every test runs the real ``fslog`` on a temporary root; handlers are tiny ``sh -c``
scripts that append what they saw to a file in the test's directory (lines written with
O_APPEND are atomic), so the test knows which records were handled, how often, in which
order and with which environment. Committed offsets are read back through the library.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
from collections import Counter, defaultdict

import pytest
from conftest import stderr_lines, wait_for


def committed(cli, group: str) -> dict:
    from fslog.groups.registry import Registry
    return Registry(str(cli.root), group, create=False).committed_all()


def lines(path) -> list[str]:
    try:
        with open(path, "rb") as f:
            return f.read().decode().splitlines()
    except FileNotFoundError:
        return []


def handled(path) -> list[tuple[int, int]]:
    """[(partition, offset)] from a log of "P O" lines."""
    return [tuple(map(int, line.split()[:2])) for line in lines(path)]


def produce_keyed(cli, topic: str, n: int, partitions: int = 1, *extra) -> None:
    cli.create(topic, "--partitions", partitions)
    data = "".join(f"k{i}:v{i}\n" for i in range(n)).encode()
    cli.produce(topic, data, "--key-separator", ":", *extra)


def by_partition(cli, topic: str) -> dict[int, list[int]]:
    out = defaultdict(list)
    for r in cli.records(topic):
        out[r.partition].append(r.offset)
    return out


# ---------------------------------------------------------------- success, environment
def test_exec_runs_once_per_record_with_env_and_commits(cli, tmp_path):
    out = tmp_path / "out"
    produce_keyed(cli, "t", 6, 2, "--header", "content-type=text/x", "--header", "src=web")
    cli.produce("t", b"no key\n", "--partition", "1")
    script = ('printf "%s %s %s %s %s %s %s|" "$FSLOG_PARTITION" "$FSLOG_OFFSET" "$FSLOG_TOPIC" '
              '"${FSLOG_KEY-unset}" "$FSLOG_HEADER_CONTENT_TYPE" "$FSLOG_GROUP" "$FSLOG_ATTEMPT" >> "$OUT"; '
              'cat >> "$OUT"; [ -n "$FSLOG_TIMESTAMP" ] && [ -d "$FSLOG_ROOT" ]')
    cp = cli("consume", "t", "--group", "g", "--exec", script, env={"OUT": str(out)})
    assert cp.stdout == b"" and cp.stderr == b""
    got = {}
    for line in lines(out):
        meta, value = line.split("|")
        p, o, topic, key, ctype, group, attempt = meta.split(" ")
        got[(int(p), int(o))] = (topic, key, ctype, group, attempt, value)
    want = {}
    for r in cli.records("t"):
        key = r.key.decode() if r.key is not None else "unset"
        ctype = "text/x" if r.key is not None else ""
        want[(r.partition, r.offset)] = ("t", key, ctype, "g", "1", r.value.decode())
    assert got == want and len(got) == 7
    ends = {("t", p): len(offs) for p, offs in by_partition(cli, "t").items()}
    assert committed(cli, "g") == ends
    # a second run has nothing left to do
    cli("consume", "t", "--group", "g", "--exec", script, env={"OUT": str(out)})
    assert len(lines(out)) == 7


def test_exec_without_group_commits_nothing(cli, tmp_path):
    out = tmp_path / "out"
    produce_keyed(cli, "t", 3)
    for _ in range(2):
        cli("consume", "t", "--exec", 'echo "$FSLOG_OFFSET" >> "$OUT"', env={"OUT": str(out)})
    assert lines(out) == ["0", "1", "2"] * 2
    assert not (cli.root / "groups").exists() or not any((cli.root / "groups").iterdir())


def test_exec_argv_runs_without_a_shell_and_stdout_is_passed_through(cli, tmp_path):
    produce_keyed(cli, "t", 2)
    cp = cli("consume", "t", "--group", "g", "--exec-argv", "--exec", "printf '<%s>' $FSLOG_OFFSET")
    # no shell: $FSLOG_OFFSET is not expanded, quotes are removed like a shell would
    assert cp.stdout == b"<$FSLOG_OFFSET><$FSLOG_OFFSET>"
    cp = cli("consume", "t", "--exec", "tr a-z A-Z", "--exec-argv")
    assert cp.stdout == b"V0\nV1\n"


def test_exec_format_json_on_stdin_and_binary_keys(cli, tmp_path):
    out = tmp_path / "out"
    log = cli.log()
    log.create_topic("t", partitions=1)
    with log.producer("t") as p:
        p.send(b"a\x00b", key=b"\x00\xff")
        p.send(b"plain", key=b"\xff\xfe", headers=[("x-id", b"7")])
        p.flush()
    script = 'printf "%s;%s;%s;" "${FSLOG_KEY-unset}" "${FSLOG_KEY_BASE64-unset}" "${FSLOG_HEADER_X_ID-}" >> "$OUT"; cat >> "$OUT"'
    cli("consume", "t", "--format", "json", "--exec", script, env={"OUT": str(out)})
    data = out.read_bytes().split(b"\n")
    first, second = data[0], data[1]
    k, k64, hid, doc = first.split(b";", 3)
    assert (k, base64.b64decode(k64), hid) == (b"unset", b"\x00\xff", b"")
    assert json.loads(doc)["value"] == "a\x00b"
    k, k64, hid, doc = second.split(b";", 3)
    assert (k, k64, hid) == (b"\xff\xfe", b"unset", b"7")  # non-UTF-8 bytes kept as they are
    assert json.loads(doc)["offset"] == 1


# ---------------------------------------------------------------- failures
FAIL_AT_2 = ('[ "$FSLOG_OFFSET" != 2 ] || { echo "boom at $FSLOG_OFFSET" >&2; exit 3; }; '
             'echo "$FSLOG_PARTITION $FSLOG_OFFSET $FSLOG_ATTEMPT" >> "$OUT"')


def test_retries_with_backoff_until_success(cli, tmp_path):
    out = tmp_path / "out"
    produce_keyed(cli, "t", 4)
    script = ('[ "$FSLOG_OFFSET" != 1 ] || [ "$FSLOG_ATTEMPT" -ge 3 ] || exit 9; '
              'echo "$FSLOG_PARTITION $FSLOG_OFFSET $FSLOG_ATTEMPT" >> "$OUT"')
    cp = cli("consume", "t", "--group", "g", "--exec", script, "--retries", "3",
             "--retry-backoff", "0.01", env={"OUT": str(out)})
    assert lines(out) == ["0 0 1", "0 1 3", "0 2 1", "0 3 1"]
    assert stderr_lines(cp) == [
        "fslog: t/0@1: exit 9 (attempt 1 of 4); retrying in 0.01 s",
        "fslog: t/0@1: exit 9 (attempt 2 of 4); retrying in 0.02 s",
    ]
    assert committed(cli, "g") == {("t", 0): 4}


def test_dead_letter_with_headers_and_processing_goes_on(cli, tmp_path):
    out = tmp_path / "out"
    produce_keyed(cli, "t", 5, 1, "--header", "src=web")
    cp = cli("consume", "t", "--group", "g", "--exec", FAIL_AT_2, "--retries", "1",
             "--retry-backoff", "0", "--dead-letter", "t.dlq", env={"OUT": str(out)})
    assert handled(out) == [(0, 0), (0, 1), (0, 3), (0, 4)]
    err = stderr_lines(cp)
    assert "fslog: created dead-letter topic 't.dlq' with 1 partition" in err
    assert "fslog: t/0@2: exit 3 after 2 attempts; written to dead-letter topic 't.dlq'" in err
    assert err.count("boom at 2") == 2  # the command's stderr is passed through
    assert committed(cli, "g") == {("t", 0): 5}
    [dl] = cli.records("t.dlq")
    assert (dl.key, dl.value) == (b"k2", b"v2")
    h = dict(dl.headers)
    assert h["src"] == b"web"  # the original headers are kept
    assert {k: v for k, v in h.items() if k.startswith("fslog.errors.")} == {
        "fslog.errors.topic": b"t", "fslog.errors.partition": b"0",
        "fslog.errors.offset": b"2",
        "fslog.errors.timestamp": str(cli.records("t")[2].timestamp).encode(),
        "fslog.errors.exit.code": b"3", "fslog.errors.reason": b"exit 3",
        "fslog.errors.attempts": b"2", "fslog.errors.group": b"g",
        "fslog.errors.stderr": b"boom at 2\n"}


def test_timeout_and_unstartable_command_are_failures(cli, tmp_path):
    produce_keyed(cli, "t", 1)
    cli("consume", "t", "--group", "g", "--exec", "sleep 30", "--exec-timeout", "0.2",
        "--dead-letter", "dlq", timeout=20)
    [dl] = cli.records("dlq")
    h = dict(dl.headers)
    assert h["fslog.errors.reason"] == b"timed out after 0.2 s"
    assert h["fslog.errors.exit.code"] == str(128 + signal.SIGTERM).encode()
    cp = cli("consume", "t", "--exec-argv", "--exec", "/nonexistent/handler", check=1)
    assert stderr_lines(cp) == [
        "fslog: t/0@0: the command failed (cannot run the command: No such file or directory) "
        "after 1 attempt; not committed, the next run starts with it (--retries N to retry, "
        "--dead-letter TOPIC to set failed records aside and go on)"]


def test_failure_without_dead_letter_stops_and_next_run_starts_with_it(cli, tmp_path):
    out = tmp_path / "out"
    produce_keyed(cli, "t", 5)
    cp = cli("consume", "t", "--group", "g", "--exec", FAIL_AT_2, env={"OUT": str(out)}, check=1)
    assert handled(out) == [(0, 0), (0, 1)]  # nothing after the failed record was started
    err = stderr_lines(cp)
    assert err[0] == "boom at 2"
    assert err[1].startswith("fslog: t/0@2: the command failed (exit 3) after 1 attempt; "
                             "stderr: boom at 2; not committed, the next run starts with it")
    assert len(err) == 2
    assert committed(cli, "g") == {("t", 0): 2}
    assert json.loads(cli("group", "describe", "g", "--json").stdout)["members"] == []
    # fixed handler: the next run starts with the failed record
    cli("consume", "t", "--group", "g", "--exec", 'echo "$FSLOG_PARTITION $FSLOG_OFFSET" >> "$OUT"',
        env={"OUT": str(out)})
    assert handled(out) == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]


# ---------------------------------------------------------------- --batch, --concurrency
def test_batch_hands_several_records_per_command(cli, tmp_path):
    out = tmp_path / "out"
    produce_keyed(cli, "t", 10)
    script = 'echo "$FSLOG_OFFSET $FSLOG_LAST_OFFSET $FSLOG_COUNT ${FSLOG_KEY-unset} $(tr "\\n" ,)" >> "$OUT"'
    cli("consume", "t", "--group", "g", "--exec", script, "--batch", "4", env={"OUT": str(out)})
    assert lines(out) == ["0 3 4 unset v0,v1,v2,v3,", "4 7 4 unset v4,v5,v6,v7,",
                          "8 9 2 unset v8,v9,"]
    assert committed(cli, "g") == {("t", 0): 10}
    # a failed batch is not committed: all of it is handled again by the next run
    cli.produce("t", b"x\ny\nz\n")
    cp = cli("consume", "t", "--group", "g", "--exec", "exit 1", "--batch", "2", check=1)
    assert "t/0@10..11: the command failed (exit 1)" in cp.stderr.decode()
    assert committed(cli, "g") == {("t", 0): 10}


def test_concurrency_keeps_order_per_partition(cli, tmp_path):
    log_file = tmp_path / "events"
    produce_keyed(cli, "t", 40, 4)
    script = ('echo "start $FSLOG_PARTITION $FSLOG_OFFSET" >> "$OUT"; sleep 0.05; '
              'echo "end $FSLOG_PARTITION $FSLOG_OFFSET" >> "$OUT"')
    cli("consume", "t", "--group", "g", "--exec", script, "--concurrency", "3",
        env={"OUT": str(log_file)})
    events = [line.split() for line in lines(log_file)]
    running: dict[int, int] = {}
    seen = defaultdict(list)
    most = 0
    for kind, p, o in events:
        p, o = int(p), int(o)
        if kind == "start":
            assert p not in running, f"two commands at once for partition {p}"
            running[p] = o
            seen[p].append(o)
            most = max(most, len(running))
        else:
            assert running.pop(p) == o
    assert dict(seen) == by_partition(cli, "t")  # every record once, in order per partition
    assert 1 < most <= 3
    assert committed(cli, "g") == {("t", p): len(o) for p, o in seen.items()}


def test_max_messages_and_usage_errors(cli, tmp_path):
    out = tmp_path / "out"
    produce_keyed(cli, "t", 5)
    cli("consume", "t", "--group", "g", "--exec", 'echo "0 $FSLOG_OFFSET" >> "$OUT"',
        "--max-messages", "2", env={"OUT": str(out)})
    assert handled(out) == [(0, 0), (0, 1)] and committed(cli, "g") == {("t", 0): 2}
    cp = cli("consume", "t", "--retries", "2", check=2)
    assert b"--retries needs --exec CMD" in cp.stderr
    cp = cli("consume", "t", "--group", "g", "--exec", "true", "--dead-letter", "t", check=1)
    assert stderr_lines(cp)[0].startswith("fslog: --dead-letter 't' is also a topic being consumed")
    cp = cli("consume", "t", "--exec", " ", check=1)
    assert stderr_lines(cp) == ["fslog: --exec is empty: give the command to run for each record"]
    cp = cli("consume", "t", "--exec", "'unclosed", "--exec-argv", check=1)
    assert b"No closing quotation" in cp.stderr
    cp = cli("consume", "t", "--exec", "true", "--dead-letter", "bad/name", check=1)
    assert committed(cli, "g") == {("t", 0): 2}


# ---------------------------------------------------------------- signals and crashes
def _member(cli, tmp_path, script, *extra, env=None):
    err = open(tmp_path / "member.err", "wb")
    p = cli.popen("consume", "t", "--group", "g", "--session-timeout", "60", "--exec", script,
                  *extra, stdout=subprocess.DEVNULL, stderr=err, env=env)
    err.close()
    return p


def test_sigterm_waits_for_running_command_commits_and_leaves(cli, tmp_path):
    out = tmp_path / "events"
    gate = tmp_path / "gate"
    env = {"OUT": str(out), "GATE": str(gate)}
    produce_keyed(cli, "t", 20, 2)
    # commands from offset 2 on wait for the gate: SIGTERM certainly comes while they run
    script = ('echo "start $FSLOG_PARTITION $FSLOG_OFFSET" >> "$OUT"; '
              'if [ "$FSLOG_OFFSET" -ge 2 ]; then while [ ! -e "$GATE" ]; do sleep 0.01; done; fi; '
              'echo "end $FSLOG_PARTITION $FSLOG_OFFSET" >> "$OUT"')
    p = _member(cli, tmp_path, script, "--follow", "--concurrency", "2", env=env)
    wait_for(lambda: sum(1 for line in lines(out) if line.startswith("end")) >= 2, 120,
             what="two records handled")
    wait_for(lambda: any(line.startswith("start") and int(line.split()[2]) >= 2 for line in lines(out)),
             120, what="a command running")
    p.send_signal(signal.SIGTERM)
    gate.touch()
    assert p.wait(60) == 0, (tmp_path / "member.err").read_text()
    ev = [line.split() for line in lines(out)]
    starts = [(int(a), int(b)) for k, a, b in ev if k == "start"]
    ends = [(int(a), int(b)) for k, a, b in ev if k == "end"]
    assert sorted(starts) == sorted(ends)  # every running command was waited for
    done = Counter(p for p, _ in ends)
    assert committed(cli, "g") == {("t", q): done.get(q, 0) for q in (0, 1)}
    assert json.loads(cli("group", "describe", "g", "--json").stdout)["members"] == []
    # the next run handles exactly the rest
    cli("consume", "t", "--group", "g", "--exec", script, "--concurrency", "2", env=env)
    ends = [tuple(map(int, line.split()[1:])) for line in lines(out) if line.startswith("end")]
    assert sorted(ends) == sorted((p, o) for p, offs in by_partition(cli, "t").items() for o in offs)


def test_sigterm_during_a_retry_backoff_says_the_record_is_left(cli, tmp_path):
    out = tmp_path / "events"
    produce_keyed(cli, "t", 2)
    script = 'echo "try $FSLOG_OFFSET" >> "$OUT"; exit 3'
    p = _member(cli, tmp_path, script, "--follow", "--retries", "5", "--retry-backoff", "60",
                "--retry-backoff-max", "60",
                env={"OUT": str(out)})
    wait_for(lambda: len(lines(out)) == 1, 120, what="the first attempt")
    wait_for(lambda: b"retrying in 60 s" in (tmp_path / "member.err").read_bytes(), 120,
             what="the retry message")
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0
    err = (tmp_path / "member.err").read_text().splitlines()
    assert "not retried, as fslog is stopping" in err[-1] and "t/0@0" in err[-1], err
    assert lines(out) == ["try 0"]  # no second attempt after SIGTERM
    assert committed(cli, "g") == {("t", 0): 0}  # left for the next run


def test_sigterm_stops_a_command_running_past_the_shutdown_timeout(cli, tmp_path):
    out = tmp_path / "events"
    produce_keyed(cli, "t", 3)
    script = 'echo "start 0 $FSLOG_OFFSET" >> "$OUT"; [ "$FSLOG_OFFSET" = 1 ] && sleep 60; true'
    p = _member(cli, tmp_path, script, "--follow", "--shutdown-timeout", "0.3",
                env={"OUT": str(out)})
    wait_for(lambda: len(lines(out)) == 2, 20, what="the second record's command")
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0
    err = (tmp_path / "member.err").read_text()
    assert err == ("fslog: stopped 1 command(s) still running after 0.3 s (t/0@1); their "
                   "records are not committed and will be handled again\n")
    assert committed(cli, "g") == {("t", 0): 1}


@pytest.mark.parametrize("concurrency", [1, 3])
def test_kill9_then_rerun_handles_every_record_at_least_once(cli, tmp_path, concurrency):
    """Duplicates only for records whose commands were in flight: at most one per
    partition, the one at the partition's committed offset when fslog died."""
    out = tmp_path / "out"
    started = tmp_path / "started"
    gate = tmp_path / "gate"
    produce_keyed(cli, "t", 90, 3)
    # commands from offset 10 on wait for the gate: the kill lands while fslog has some in
    # flight and records left, on a fast or a busy machine
    script = ('echo "$FSLOG_PARTITION $FSLOG_OFFSET" >> "$STARTED"; '
              'if [ "$FSLOG_OFFSET" -ge 10 ]; then while [ ! -e "$GATE" ]; do sleep 0.01; done; fi; '
              'echo "$FSLOG_PARTITION $FSLOG_OFFSET" >> "$OUT"')
    env = {"OUT": str(out), "STARTED": str(started), "GATE": str(gate)}
    p = _member(cli, tmp_path, script, "--concurrency", str(concurrency), env=env)
    wait_for(lambda: any(o >= 10 for _, o in handled(started)), 120, what="a command at the gate")
    p.kill()
    p.wait(60)
    gate.touch()  # commands that were running finish on their own (own session)
    wait_for(lambda: len(lines(out)) == len(lines(started)), 120, what="the orphaned commands to end")
    at_kill = committed(cli, "g")
    assert sum(at_kill.values()) < 90
    cli("consume", "t", "--group", "g", "--exec", script, "--concurrency", str(concurrency),
        env=env)
    counts = Counter(handled(out))
    every = {(p, o) for p, offs in by_partition(cli, "t").items() for o in offs}
    assert set(counts) == every  # nothing lost
    dups = {po for po, n in counts.items() if n > 1}
    assert all(counts[po] == 2 for po in dups)
    assert dups <= {(tp[1], off) for tp, off in at_kill.items()}
    assert len(dups) <= concurrency
    # in order per partition in each run: the rerun starts at the committed offset
    ends = {q: len(offs) for q, offs in by_partition(cli, "t").items()}
    for q, n in ends.items():
        offs = [o for pp, o in handled(out) if pp == q]
        c = at_kill.get(("t", q), 0)
        first, second = offs[:len(offs) - (n - c)], offs[len(offs) - (n - c):]
        assert second == list(range(c, n))
        assert first == list(range(len(first))) and len(first) in (c, c + 1)


def test_rebalance_lets_the_running_command_finish_before_handing_over(cli, tmp_path):
    """A second member joins while the first is busy: no partition is ever handled by two
    commands at once, and a graceful handover handles every record exactly once."""
    out = tmp_path / "events"
    produce_keyed(cli, "t", 24, 2)
    script = ('echo "start $FSLOG_PARTITION $FSLOG_OFFSET" >> "$OUT"; sleep 0.1; '
              'echo "end $FSLOG_PARTITION $FSLOG_OFFSET" >> "$OUT"')
    env = {"OUT": str(out)}
    a = _member(cli, tmp_path, script, "--follow", "--concurrency", "2", env=env)
    wait_for(lambda: len(lines(out)) >= 4, 20, what="the first member at work")
    b = cli.popen("consume", "t", "--group", "g", "--session-timeout", "60", "--follow",
                  "--exec", script, env=env, stdout=subprocess.DEVNULL)
    wait_for(lambda: sum(committed(cli, "g").values()) == 24, 30, what="everything handled")
    for p in (a, b):
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
    running: dict[int, int] = {}
    ends = []
    for kind, p, o in (line.split() for line in lines(out)):
        p, o = int(p), int(o)
        if kind == "start":
            assert p not in running, f"partition {p} handled by two commands at once"
            running[p] = o
        else:
            assert running.pop(p) == o
            ends.append((p, o))
    assert sorted(ends) == sorted((p, o) for p, offs in by_partition(cli, "t").items() for o in offs)
