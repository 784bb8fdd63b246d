"""``fslog top``, progress on a terminal, ``--version``, ``--help`` and shell completion.

Terminal behaviour is checked on a real pseudo-terminal (``pty``); everything else runs
``fslog`` with pipes, where no progress and no escape sequence may ever appear.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest
from conftest import FSLOG_CMD, wait_for


def on_pty(cli, args, which: str = "stderr", stdin=subprocess.DEVNULL, keys: bytes = b"",
           stop_when=None, timeout: float = 60):
    """Run fslog with stdout or stderr (``which``) on a pseudo-terminal; return
    (exit status, bytes written to the terminal). ``stop_when(output so far)``: once it
    is true, type ``keys`` (or, without keys, send SIGTERM) -- on what fslog showed, not
    after a time, which a busy machine would make too short."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    kw = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    kw[which] = slave
    if keys:
        stdin = slave
    p = subprocess.Popen(FSLOG_CMD + list(map(str, args)), stdin=stdin, env=cli.env(),
                         **kw)
    os.close(slave)
    out = bytearray()
    start = time.monotonic()
    sent = False
    waiting = select.poll()  # (not select(): a worker may hold descriptors past 1023)
    waiting.register(master, select.POLLIN)
    while True:
        if stop_when is not None and not sent and stop_when(bytes(out)):
            if keys:
                os.write(master, keys)
            else:
                p.send_signal(signal.SIGTERM)
            sent = True
        if time.monotonic() - start > timeout:
            p.kill()
            pytest.fail(f"{args}: still running after {timeout}s")
        if waiting.poll(50):
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal's other side is gone
                break
            if not data:
                break
            out += data
        elif p.poll() is not None:
            break
    os.close(master)
    return p.wait(10), bytes(out)


def plain(data: bytes) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", data.decode("utf-8", "replace"))


# ---------------------------------------------------------------- fslog top
def test_top_once_json_shows_topics_groups_members_and_lag(cli, tmp_path):
    cli.create("t", "--partitions", "2")
    cli.produce("t", b"".join(b"k%d:v\n" % i for i in range(20)), "--key-separator", ":")
    cli("consume", "t", "--group", "done", "--max-messages", "5")
    member = cli.popen("consume", "t", "--group", "live", "--follow", "--offset", "end",
                       "--session-timeout", "60")  # live however busy the machine
    def live_members():
        cp = cli("group", "describe", "live", "--json", check=None)
        return cp.returncode == 0 and json.loads(cp.stdout)["members"]
    wait_for(live_members, 120, what="a live member")
    doc = json.loads(cli("top", "--once", "--json", "--interval", "0.1").stdout)
    ends = [len([r for r in cli.records("t") if r.partition == p]) for p in (0, 1)]
    [t] = doc["topics"]
    assert (t["topic"], t["partitions"], t["end_offsets"], t["end_offset_total"], t["records"]) \
        == ("t", 2, ends, 20, 20)
    assert t["produce_rate"] == 0
    groups = {g["group"]: g for g in doc["groups"]}
    assert set(groups) == {"done", "live"}
    assert groups["done"]["lag"] == 15 and groups["done"]["members"] == []
    assert groups["live"]["lag"] == 0
    [m] = groups["live"]["members"]
    assert m["pid"] == member.pid and sorted(m["partitions"]) == ["t/0", "t/1"]
    assert m["lag"] == 0
    assert doc["interval"] >= 0.1
    member.send_signal(signal.SIGTERM)
    assert member.wait(20) == 0


def test_top_rates_between_two_samples(cli):
    from fslog.monitor import sample, view
    cli.create("t", "--partitions", "2")
    cli.produce("t", b"a\n" * 10)
    log = cli.log()
    first = sample(log)
    assert view(None, first)["topics"][0]["produce_rate"] is None
    cli.produce("t", b"b\n" * 30)
    cli("consume", "t", "--group", "g", "--max-messages", "25")
    second = sample(log)
    second["monotonic"] = first["monotonic"] + 2.0  # as if two seconds passed
    doc = view(first, second)
    assert doc["topics"][0]["produce_rate"] == 15.0
    assert doc["groups"][0]["consume_rate"] is None  # a group new since the first sample
    third = sample(log)
    cli("consume", "t", "--group", "g")
    fourth = sample(log)
    fourth["monotonic"] = third["monotonic"] + 0.5
    g = view(third, fourth)["groups"][0]
    assert (g["consume_rate"], g["lag"]) == (30.0, 0)  # 15 more records in half a second


def test_top_once_plain_tables_and_empty_root(cli):
    cp = cli("top", "--once", "--interval", "0.05")
    assert cp.stdout.decode().splitlines() == [
        "TOPIC\tPARTITIONS\tLOG-END OFFSETS\tTOTAL\tPRODUCED/S", "",
        "GROUP\tGENERATION\tMEMBERS\tLAG\tCONSUMED/S", "",
        "GROUP\tMEMBER\tPID\tHOST\tPARTITIONS\tLAG"]
    assert cp.stderr == b""


def test_top_live_refreshes_in_place_until_q_or_sigterm(cli):
    cli.create("orders", "--partitions", "3")
    code, out = on_pty(cli, ["top", "--interval", "0.2"], which="stdout",
                       stop_when=lambda out: plain(out).count("orders") >= 2)
    assert code == 0
    text = plain(out)
    assert "fslog top" in text and "orders" in text and "PRODUCED/S" in text
    assert text.count("orders") >= 2  # refreshed at least once
    code, out = on_pty(cli, ["top", "--interval", "0.2"], which="stdout", keys=b"q",
                       stop_when=lambda out: "orders" in plain(out))
    assert code == 0 and "orders" in plain(out)


def test_top_json_stream_ends_on_sigterm(cli):
    p = cli.popen("top", "--json", "--interval", "0.1")
    first = [p.stdout.readline(), p.stdout.readline()]  # two samples: it runs (and handles signals)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and err == b""
    docs = [json.loads(line) for line in b"".join(first + [out]).splitlines()]
    assert len(docs) >= 2 and all(d["topics"] == [] for d in docs)


# ---------------------------------------------------------------- progress
def test_produce_from_a_file_shows_progress_only_on_a_terminal(cli, tmp_path):
    data = tmp_path / "lines"
    data.write_bytes(b"".join(b"%08d some padding to make it longer\n" % i for i in range(200000)))
    code, out = on_pty(cli, ["produce", "t"], stdin=open(data, "rb"))
    assert code == 0
    text = plain(out)
    assert "produce" in text and "records" in text and "%" in text
    assert "produced 200000 records" in text  # the summary stays after the bar
    code, out = on_pty(cli, ["produce", "t", "--quiet"], stdin=open(data, "rb"))
    assert code == 0 and out == b""
    cp = cli("produce", "t", input=data.read_bytes())
    assert cp.stderr == b""  # not a terminal: silent
    assert len(cli.records("t")) == 600000


def test_consume_and_exec_show_progress_on_a_terminal(cli, tmp_path):
    cli.produce("t", b"".join(b"value %d\n" % i for i in range(300000)))
    code, out = on_pty(cli, ["consume", "t"])
    assert code == 0
    text = plain(out)
    assert "consume" in text and "records" in text and " MB" in text
    code, out = on_pty(cli, ["consume", "t", "--quiet"])
    assert code == 0 and out == b""
    cli.produce("small", b"a\nb\nc\nd\n")
    code, out = on_pty(cli, ["consume", "small", "--group", "g", "--exec", "sleep 0.15"])
    assert code == 0
    text = plain(out)
    assert "exec" in text and "handled 4 records with 4 command(s)" in text


# ---------------------------------------------------------------- --version, --help, completion
def test_version_from_package_metadata(cli):
    from importlib.metadata import version
    assert cli("--version").stdout == f"fslog {version('fslog')}\n".encode()


def test_every_command_has_help_with_an_example(cli):
    top = cli("--help").stdout.decode()
    commands = re.findall(r"^  (\w+)  ", top, re.M)
    assert {"produce", "consume", "top", "group", "topic", "status", "verify"} <= set(commands)
    todo = []
    for c in commands:
        sub = re.findall(r"^  (\w+)  ", cli(c, "--help").stdout.decode().split("Commands:")[-1], re.M) \
            if c in ("group", "topic") else []
        todo.append([c])
        todo.extend([c, s] for s in sub)
    for args in todo:
        text = cli(*args, "--help").stdout.decode()
        assert "Example" in text, f"fslog {' '.join(args)} --help has no example"


def test_shell_completion(cli):
    # the script `fslog --install-completion` installs (asked for bash by name: the
    # --show-completion flag guesses the shell from the parent processes, and a test
    # runner may have none)
    cp = cli(env={"_FSLOG_COMPLETE": "source_bash"})
    assert b"_FSLOG_COMPLETE" in cp.stdout and b"complete " in cp.stdout
    cp = cli(env={"_FSLOG_COMPLETE": "complete_bash", "COMP_WORDS": "fslog consume t --exec-a",
                  "COMP_CWORD": "3"})
    assert cp.stdout.split() == [b"--exec-argv"]
