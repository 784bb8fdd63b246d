"""``fslog replicate --from ROOT`` and ``fslog promote`` through the real CLI: byte-identical
copies, kill -9 of the follower, retention and compaction on the leader, topic deletion
and group offsets, and a deposed leader that truncates its unreplicated tail."""

from __future__ import annotations

import json
import os
import signal

import pytest
from conftest import stderr_lines, wait_for
from replication_helpers import (
    TINY,
    assert_identical,
    end_offset,
    kill_follower_mid_copy_and_resume,
    lines,
    logs_of,
    two_partitions_of_tiny_segments,
)

import fslog


@pytest.mark.slow
def test_once_copies_byte_for_byte_and_the_copy_is_a_full_root(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cli("--root", a, "topic", "create", "t", "--partitions", "2", *TINY)
    cli("--root", a, "produce", "t", "-K", ":", input=b"".join(b"k%d:v%d\n" % (i % 7, i) for i in range(3000)))
    cp = cli("--root", b, "replicate", "--from", a, "--once", "--json")
    summary = json.loads(cp.stdout)
    assert summary["offsets_copied"] == 3000 and summary["topics_created"] == ["t"]
    assert_identical(a, b, "t", 2)
    assert len(logs_of(b, "t")) > 3
    cli("--root", b, "verify")
    assert cli("--root", b, "consume", "t").stdout == cli("--root", a, "consume", "t").stdout
    assert json.loads(cli("--root", b, "status", "--json").stdout)["replication"] == {
        "role": "follower", "leader": str(a), "running": None}
    # a rerun copies nothing more; the follower refuses producers, and itself as leader
    again = json.loads(cli("--root", b, "replicate", "--from", a, "--once", "--json").stdout)
    assert again["offsets_copied"] == 0
    cp = cli("--root", b, "produce", "t", input=b"x\n", check=1)
    assert "is a follower" in cp.stderr.decode() and "fslog promote" in cp.stderr.decode()
    # cleaning the follower is refused: it copies the leader's retention and compaction
    cp = cli("--root", b, "clean", check=1)
    assert stderr_lines(cp) == [f"fslog: {b} is a follower (fslog replicate): it copies its "
                                f"leader's retention and compaction, and cleaning it here would "
                                f"make it differ; run 'fslog clean' on the leader (or 'fslog "
                                f"promote' this root first)"]
    cp = cli("--root", b, "replicate", "--from", b, "--once", check=1)
    assert stderr_lines(cp) == [f"fslog: {b} cannot follow itself: give --from another root "
                                f"(the leader) and --root this follower's"]
    cp = cli("--root", b, "replicate", "--from", tmp_path / "nothing", "--once", check=1)
    assert "is not an fslog root" in cp.stderr.decode()


@pytest.mark.slow
def test_follower_killed_mid_copy_resumes_with_no_gap_and_no_duplicate(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    two_partitions_of_tiny_segments(a, 60000)
    kill_follower_mid_copy_and_resume(cli, a, b, str(a), records=60000, live=3000,
                                      most_segments=60, seed=13)


@pytest.mark.slow
def test_retention_compaction_deletion_and_groups_follow_the_leader(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cli("--root", a, "topic", "create", "old", *TINY, "--config", "retention.bytes=10000")
    cli("--root", a, "topic", "create", "kv", *TINY, "--config", "cleanup.policy=compact",
        "--config", "min.cleanable.dirty.ratio=0.01")
    cli("--root", a, "topic", "create", "gone")
    cli("--root", a, "produce", "gone", input=b"x\n")
    cli("--root", a, "produce", "kv", "-K", ":", input=b"".join(b"k%d:v%d\n" % (i % 20, i) for i in range(2000)))
    cli("--root", a, "produce", "old", input=lines("o", 1500))
    cli("--root", a, "consume", "old", "--group", "g", "--max-messages", "700", "--quiet")
    f = cli.popen("--root", b, "replicate", "--from", a)
    wait_for(lambda: (b / "topics" / "gone").is_dir() and end_offset(b, "old") == 1500,
             timeout=60, what="the first copy")
    # retention on the leader moves its log start: the follower deletes the same segments
    cli("--root", a, "produce", "old", input=lines("o", 1500, start=1500))
    cli("--root", a, "clean", "old")
    # compaction rewrites the leader's sealed segments: the follower copies them over
    cli("--root", a, "produce", "kv", "-K", ":", input=b"".join(b"k%d:w%d\n" % (i % 20, i) for i in range(500)))
    cli("--root", a, "clean", "kv", "--compact-now")
    cli("--root", a, "topic", "delete", "gone")
    cli("--root", a, "consume", "old", "--group", "g", "--max-messages", "100", "--quiet")
    cli("--root", a, "topic", "alter", "old", "--config", "retention.ms=86400000")
    committed = json.loads(cli("--root", a, "group", "describe", "g", "--json").stdout)[
        "partitions"][0]["committed"]
    assert committed > 700

    def caught_up():
        try:
            assert_identical(a, b, "old")
            assert_identical(a, b, "kv")
        except (AssertionError, OSError):
            return False
        described = cli("--root", b, "group", "describe", "g", "--json", check=None)
        return (not (b / "topics" / "gone").exists() and described.returncode == 0 and
                json.loads(described.stdout)["partitions"][0]["committed"] == committed)
    wait_for(caught_up, timeout=60, interval=0.2, what="the follower to catch up")
    lb, la = fslog.Log(str(b)), fslog.Log(str(a))
    assert lb.topic("old").partition(0).start_offset() == la.topic("old").partition(0).start_offset() > 0
    assert lb.topic("old").config.overrides == la.topic("old").config.overrides
    f.send_signal(signal.SIGTERM)
    assert f.wait(timeout=30) == 0
    err = f.stderr.read().decode()
    assert "topic gone: deleted (the leader deleted it)" in err
    assert "old/0: log start offset now" in err
    assert "copied again (rewritten by the leader's compaction)" in err
    cli("--root", b, "verify")
    assert cli("--root", b, "consume", "kv").stdout == cli("--root", a, "consume", "kv").stdout


def test_a_deposed_leader_truncates_its_unreplicated_tail_and_converges(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cli("--root", a, "topic", "create", "t", *TINY)
    cli("--root", a, "produce", "t", input=lines("a", 2000))
    cli("--root", b, "replicate", "--from", a, "--once")
    # A goes on alone: 300 records never reach B
    cli("--root", a, "produce", "t", input=lines("lost", 300))
    # B is promoted and written to in a new leader epoch
    cp = cli("--root", b, "promote")
    assert "is the leader now" in cp.stderr.decode() and "leader epoch 1" in cp.stderr.decode()
    cli("--root", b, "produce", "t", input=lines("b", 500))
    # A, restarted as a follower of B, drops its 300 records and takes B's log
    cp = cli("--root", a, "replicate", "--from", b, "--once", "--json")
    assert "t/0: truncated 300 records (offsets 2000 to 2300) that the leader does not have" \
        in cp.stderr.decode()
    assert json.loads(cp.stdout)["records_truncated"] == 300
    assert_identical(a, b, "t")
    cli("--root", a, "verify")
    values = cli("--root", a, "consume", "t").stdout
    assert values == lines("a", 2000) + lines("b", 500)
    with open(os.path.join(a, "topics", "t", "t-0", "leader-epoch-checkpoint")) as f:
        assert f.read() == "0\n2\n0 0\n1 2000\n"
    # and back: A promoted again, B follows it, nothing to truncate
    cli("--root", a, "promote")
    cli("--root", a, "produce", "t", input=lines("a2", 10))
    cp = cli("--root", b, "replicate", "--from", a, "--once", "--json")
    assert json.loads(cp.stdout)["records_truncated"] == 0
    assert_identical(a, b, "t")
