"""``fslog topic create|list|describe|delete``, name validation, and CLI-wide behaviour
(--help, --version, usage errors, --root/FSLOG_ROOT), run as real subprocesses."""

from __future__ import annotations

import json

import pytest
from conftest import stderr_lines, tree

import fslog
from fslog.config import KEYS


# ------------------------------------------------------------------ create / list / delete
def test_create_list_describe_delete(cli, fslog_root):
    cp = cli("topic", "create", "orders")
    assert cp.stdout == b""
    assert cp.stderr == b"fslog: created topic 'orders' with 1 partition\n"
    assert (fslog_root / "topics" / "orders" / "orders-0").is_dir()

    cp = cli("topic", "list")
    assert cp.stdout == b"TOPIC\tPARTITIONS\tEND OFFSETS (SUM)\norders\t1\t0\n"
    assert cp.stderr == b""
    cp = cli("topic", "list", "--json")
    assert json.loads(cp.stdout) == [{"name": "orders", "partitions": 1, "records": 0}]

    cp = cli("topic", "delete", "orders")
    assert cp.stdout == b""
    assert cp.stderr == b"fslog: deleted topic 'orders'\n"
    assert not (fslog_root / "topics" / "orders").exists()
    assert json.loads(cli("topic", "list", "--json").stdout) == []
    assert cli.log().topics() == []


def test_list_counts_records_and_sorts(cli):
    cli.create("b", "--partitions", "2")
    cli.create("a")
    cli.produce("b", b"1\n2\n3\n", "--partition", "1")
    cli.produce("a", b"x\n")
    rows = json.loads(cli("topic", "list", "--json").stdout)
    assert rows == [{"name": "a", "partitions": 1, "records": 1},
                    {"name": "b", "partitions": 2, "records": 3}]
    assert cli("topic", "list").stdout.splitlines()[1:] == [b"a\t1\t1", b"b\t2\t3"]


def test_create_with_partitions(cli, fslog_root):
    cp = cli("topic", "create", "t", "--partitions", "3")
    assert cp.stderr == b"fslog: created topic 't' with 3 partitions\n"
    t = cli.log().topic("t")
    assert t.partition_count == 3
    for i in range(3):
        assert (fslog_root / "topics" / "t" / f"t-{i}").is_dir()
    d = json.loads(cli("topic", "describe", "t", "--json").stdout)
    assert [p["partition"] for p in d["partitions"]] == [0, 1, 2]


def test_create_existing_topic(cli):
    cli.create("t", "--partitions", "2")
    cp = cli("topic", "create", "t", check=1)
    assert stderr_lines(cp) == ["fslog: topic 't' already exists (use --if-not-exists to accept that)"]
    cp = cli("topic", "create", "t", "--if-not-exists", "--partitions", "5")
    assert cp.stdout == b""
    assert b"already exists" in cp.stderr
    assert cli.log().topic("t").partition_count == 2  # unchanged


def test_config_unknown_key_lists_valid_keys(cli, fslog_root):
    cp = cli("topic", "create", "t", "--config", "segment.bites=4096", check=1)
    lines = stderr_lines(cp)
    assert len(lines) == 1
    assert "segment.bites" in lines[0]
    for key in KEYS:
        assert key in lines[0], f"{key} missing from: {lines[0]}"
    assert not (fslog_root / "topics" / "t").exists()


@pytest.mark.parametrize("item, words", [
    ("segment.bytes=abc", ["segment.bytes", "whole number"]),
    ("segment.bytes=100", ["segment.bytes", "at least 1024"]),
    ("retention.ms=-5", ["retention.ms", "-1"]),
    ("cleanup.policy=shred", ["cleanup.policy", "compact"]),
    ("min.cleanable.dirty.ratio=2", ["between 0 and 1"]),
    ("segment.bytes", ["KEY=VALUE"]),
    ("=5", ["KEY=VALUE"]),
])
def test_config_bad_values(cli, fslog_root, item, words):
    cp = cli("topic", "create", "t", "--config", item, check=1)
    lines = stderr_lines(cp)
    assert len(lines) == 1 and lines[0].startswith("fslog: ")
    for w in words:
        assert w in lines[0]
    assert not (fslog_root / "topics" / "t").exists()


def test_config_applied(cli):
    cli.create("t", "--config", "segment.bytes=4096", "-c", "retention.ms=-1",
               "--config", "max.message.bytes=2048")
    d = json.loads(cli("topic", "describe", "t", "--json").stdout)
    cfg = d["config"]
    assert cfg["segment.bytes"] == 4096
    assert cfg["retention.ms"] == -1
    assert cfg["max.message.bytes"] == 2048
    assert set(cfg) == set(KEYS)
    for k, spec in KEYS.items():
        if k not in ("segment.bytes", "retention.ms", "max.message.bytes"):
            assert cfg[k] == spec.default
    t = cli.log().topic("t")
    assert t.config.segment_bytes == 4096 and t.config.max_message_bytes == 2048


# ------------------------------------------------------------------ describe
def test_describe_json_contract(cli, fslog_root):
    cli.create("t", "--partitions", "2", "--config", "segment.bytes=4096")
    lines = b"".join(b"record-%05d\n" % i for i in range(600))
    cli.produce("t", lines, "--partition", "1")
    cli.produce("t", b"a\nb\nc\n", "--partition", "0")

    cp = cli("topic", "describe", "t", "--json")
    assert cp.stderr == b""
    assert cp.stdout.count(b"\n") == 1 and cp.stdout.endswith(b"\n")  # one JSON document
    d = json.loads(cp.stdout)
    assert {"name", "partitions", "config"} <= set(d)
    assert d["name"] == "t"
    assert isinstance(d["config"], dict) and d["config"]["segment.bytes"] == 4096
    assert len(d["partitions"]) == 2
    for p in d["partitions"]:
        assert set(p) == {"partition", "start_offset", "end_offset", "size_bytes", "segments", "dirty_ratio"}
        logs = sorted((fslog_root / "topics" / "t" / f"t-{p['partition']}").glob("*.log"))
        assert p["segments"] == len(logs)
        assert p["size_bytes"] == sum(f.stat().st_size for f in logs)
        assert p["start_offset"] == 0
    p0, p1 = d["partitions"]
    assert (p0["end_offset"], p1["end_offset"]) == (3, 600)
    assert p1["segments"] > 1  # 600 records of 12 bytes do not fit one 4 KiB segment

    # end_offset is the offset the next record gets
    out = json.loads(cli("produce", "t", "--partition", "1", "--json", input=b"next\n").stdout)
    assert out["partitions"] == [{"partition": 1, "records": 1, "bytes": out["bytes"],
                                  "first_offset": 600, "last_offset": 600}]
    assert cli.records("t", partitions=[1])[-1].offset == 600


def test_describe_empty_topic_and_plain_table(cli):
    cli.create("t")
    d = json.loads(cli("topic", "describe", "t", "--json").stdout)
    assert d["partitions"] == [{"partition": 0, "start_offset": 0, "end_offset": 0,
                                "size_bytes": 0, "segments": 0, "dirty_ratio": None}]
    cli.produce("t", b"x\ny\n")
    size = cli.log().topic("t").partition(0).size_bytes()
    out = cli("topic", "describe", "t").stdout.decode().splitlines()
    assert out[0] == "PARTITION\tSTART OFFSET\tEND OFFSET\tRECORDS\tSIZE (BYTES)\tSEGMENTS"
    assert out[1] == f"0\t0\t2\t2\t{size}\t1"
    assert "CONFIG\tVALUE\tSOURCE" in out
    assert "segment.ms\t604800000\tdefault" in out


# ------------------------------------------------------------------ names
BAD_NAMES = ["a/b", "..", ".", "x" * 250, "bad name", "", "../escape", "tab\tname", "ünï"]


def test_refused_topic_names_create(cli, fslog_root):
    cli("topic", "list")  # initialise the root
    before = tree(fslog_root)
    outside = tree(fslog_root.parent)
    results = cli.run_many([["topic", "create", name] for name in BAD_NAMES], check=1)
    for name, cp in zip(BAD_NAMES, results):
        lines = stderr_lines(cp)
        assert len(lines) == 1 and lines[0].startswith("fslog: topic name"), (name, lines)
        assert cp.stdout == b"", name
    assert tree(fslog_root) == before
    assert tree(fslog_root.parent) == outside


def test_refused_topic_names_other_commands(cli, fslog_root):
    cli("topic", "list")
    before = tree(fslog_root.parent)
    cases = [cmd + [name] for name in ["a/b", "..", "x" * 250]
             for cmd in (["produce"], ["consume"], ["topic", "describe"], ["topic", "delete"],
                         ["verify"])]
    results = cli.run_many([(c, b"data\n") for c in cases], check=1)
    for c, cp in zip(cases, results):
        lines = stderr_lines(cp)
        assert len(lines) == 1 and lines[0].startswith("fslog: topic name"), (c, lines)
        assert cp.stdout == b"", c
    assert tree(fslog_root.parent) == before


def test_refused_name_on_fresh_root_creates_no_regular_file(cli, fslog_root):
    cli("topic", "create", "a/b", check=1)
    files = [p for p in fslog_root.rglob("*") if not p.is_dir()] if fslog_root.exists() else []
    assert files == []
    assert not (fslog_root / "topics").exists() or list((fslog_root / "topics").iterdir()) == []


def test_refused_name_leaves_fresh_root_untouched(cli, fslog_root):
    # Regression: the root, ROOT/topics and ROOT/tmp used to be created before the name
    # was checked.
    cli("topic", "create", "a/b", check=1)
    assert not fslog_root.exists()


def test_longest_valid_name(cli):
    name = "n" * 249
    cli.create(name)
    cli.produce(name, b"hello\n")
    assert cli("consume", name).stdout == b"hello\n"
    assert json.loads(cli("topic", "list", "--json").stdout)[0]["name"] == name


def test_delete_longest_valid_name(cli):
    name = "n" * 249
    cli.create(name)
    cli("topic", "delete", name)
    assert cli.log().topics() == []


def test_unknown_topic(cli):
    cli("topic", "list")
    cases = [["topic", "describe", "nope"], ["topic", "delete", "nope"], ["consume", "nope"],
             ["verify", "nope"]]
    for c, cp in zip(cases, cli.run_many(cases, check=1)):
        lines = stderr_lines(cp)
        assert len(lines) == 1, (c, lines)
        assert "topic 'nope' does not exist" in lines[0], (c, lines)
        assert cp.stdout == b"", c


def test_delete_if_exists(cli):
    cp = cli("topic", "delete", "nope", "--if-exists")
    assert cp.stdout == b"" and cp.stderr == b""


# ------------------------------------------------------------------ root selection
def test_root_option_overrides_env(cli, tmp_path):
    other = tmp_path / "other"
    cli("--root", str(other), "topic", "create", "t")
    assert fslog.Log(str(other)).topics() == ["t"]
    assert not (cli.root / "topics" / "t").exists()
    # and FSLOG_ROOT alone is honoured
    cli("topic", "create", "u")
    assert cli.log().topics() == ["u"]


def test_root_is_a_file(cli, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    cp = cli("--root", str(f), "topic", "list", check=1)
    assert len(stderr_lines(cp)) == 1 and str(f) in cp.stderr.decode()


# ------------------------------------------------------------------ help, version, usage
HELP_COMMANDS = [[], ["topic", "create"], ["topic", "list"], ["topic", "describe"],
                 ["topic", "delete"], ["produce"], ["consume"], ["verify"],
                 ["group", "list"], ["group", "describe"], ["group", "reset"], ["group", "delete"],
                 ["status"]]


def test_help(cli):
    cases = [c + ["--help"] for c in HELP_COMMANDS] + [["-h"], ["produce", "-h"], ["topic", "create", "-h"]]
    for c, cp in zip(cases, cli.run_many(cases)):
        assert b"Usage:" in cp.stdout, c
        assert b"Example" in cp.stdout, c
        assert cp.stderr == b"", c


@pytest.mark.parametrize("group", ["topic", "group"])
def test_help_command_groups(cli, group):
    # Regression: the command groups' help used to be one sentence with no example.
    cp = cli(group, "--help")
    assert b"Usage:" in cp.stdout
    assert b"Example" in cp.stdout


def test_version(cli):
    cp = cli("--version")
    assert cp.stdout == f"fslog {fslog.__version__}\n".encode()
    assert cp.stderr == b""


USAGE_ERRORS = [
    (["--bogus"], b"No such option"),
    (["nosuchcommand"], b"No such command"),
    (["topic", "create", "t", "--bogus"], b"No such option"),
    (["topic", "create"], b"Missing argument"),
    (["topic", "create", "t", "--partitions", "0"], b"--partitions"),
    (["topic", "create", "t", "--partitions", "two"], b"--partitions"),
    (["topic", "describe"], b"Missing argument"),
    (["produce", "t", "--bogus"], b"No such option"),
    (["produce", "t", "--partition", "-1"], b"--partition"),
    (["consume"], b"Missing argument"),
    (["consume", "t", "--max-messages", "-1"], b"--max-messages"),
    (["consume", "t", "--bogus"], b"No such option"),
    (["verify", "--bogus"], b"No such option"),
]


def test_usage_errors_exit_2(cli, fslog_root):
    results = cli.run_many([args for args, _ in USAGE_ERRORS], check=2)
    for (args, message), cp in zip(USAGE_ERRORS, results):
        assert message in cp.stderr, (args, cp.stderr)
        assert cp.stdout == b"", args
    assert not (fslog_root / "topics" / "t").exists()


def test_concurrent_create_same_topic(cli):
    results = cli.run_many([["topic", "create", "race", "--partitions", "2"]] * 6, check=None, workers=6)
    assert sorted(cp.returncode for cp in results) == [0, 1, 1, 1, 1, 1]
    for cp in results:
        if cp.returncode:
            assert stderr_lines(cp) == ["fslog: topic 'race' already exists (use --if-not-exists to accept that)"]
    assert cli.log().topics() == ["race"]
    assert cli.log().topic("race").partition_count == 2
    assert list((cli.root / "tmp").iterdir()) == []  # no staging left behind


def test_list_survives_one_broken_topic(cli):
    cli.create("good")
    cli.create("bad")
    (cli.root / "topics" / "bad" / "topic.json").write_text("{garbage")
    cp = cli("topic", "list", check=None)
    assert b"good" in cp.stdout
    assert b"topic.json" in cp.stderr
