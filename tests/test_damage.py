"""Damage that used to break fslog's promises (issue 11), each as a user meets it.

Three one-line produces make three small batches; one flipped bit or one changed field
in the middle of the active segment must not hide the partition, must not be taken for
a torn tail, and must not print records under offsets they never had.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct

import pytest
from conftest import CLI


def _three(cli, topic: str = "t", keyed: bool = False) -> tuple:
    if keyed:
        cli("topic", "create", topic, "--config", "cleanup.policy=compact")
    for i in (1, 2, 3):
        line = b"k%d:v%d\n" % (i, i) if keyed else b"rec%d\n" % i
        cli("produce", topic, *(["-K", ":"] if keyed else []), input=line)
    path = cli.segments(topic)[-1]
    data = bytearray(path.read_bytes())
    size = len(data) // 3
    assert struct.unpack_from(">q", data, size)[0] == 1
    return path, data, size


@pytest.mark.slow
def test_damage_in_the_middle_of_the_active_segment_hides_nothing_before_or_after(cli):
    path, data, size = _three(cli)
    data[size + size - 2] ^= 1  # a bit of the second batch's value
    path.write_bytes(data)
    out = cli("consume", "t", check=1)
    assert out.stdout == b"rec1\n"
    assert out.stderr.decode().count("\n") == 1
    assert f"{path}: position {size}:" in out.stderr.decode() and "offset 1" in out.stderr.decode()
    skip = cli("consume", "t", "--skip-corrupt")
    assert skip.stdout == b"rec1\nrec3\n"
    assert b"skipped damaged data" in skip.stderr
    assert cli("consume", "t", "--offset", "2").stdout == b"rec3\n"
    d = cli("topic", "describe", "t", "--json")
    assert json.loads(d.stdout)["partitions"][0]["end_offset"] == 3
    g = cli("consume", "t", "--group", "g", "--skip-corrupt")
    assert g.stdout == b"rec1\nrec3\n"


@pytest.mark.slow
def test_a_lengthened_batch_length_is_damage_not_a_torn_tail(cli):
    path, data, size = _three(cli)
    data[size + 11] ^= 1  # the low bit of batch 2's batchLength: one byte longer
    path.write_bytes(data)
    damaged = bytes(data)
    out = cli("consume", "t", check=1)
    assert out.stdout == b"rec1\n" and f"position {size}" in out.stderr.decode()
    assert cli("consume", "t", "--skip-corrupt").stdout == b"rec1\nrec3\n"
    v = cli("verify", "t", check=1)
    assert f"position {size}" in v.stdout.decode()
    p = cli("produce", "t", input=b"rec4\n", check=1)
    assert "will not truncate" in p.stderr.decode()
    assert path.read_bytes() == damaged  # the acknowledged rec3 is still there
    assert cli("consume", "t", "--skip-corrupt").stdout == b"rec1\nrec3\n"


def test_a_lengthened_batch_length_in_a_sealed_segment_loses_only_that_batch(cli):
    cli("topic", "create", "t", "--config", "segment.bytes=1024")
    values = [b"rec%d-" % i + b"x" * 200 for i in range(1, 7)]
    for v in values:
        cli("produce", "t", input=v + b"\n")
    segs = cli.segments("t")
    data = bytearray(segs[0].read_bytes())
    size = len(data) // 3
    assert len(segs) == 2 and struct.unpack_from(">q", data, size)[0] == 1
    low = data[size + 11]
    data[size + 11] |= (low + 1) & ~low  # set its lowest clear bit: the batch grows
    segs[0].write_bytes(data)
    skip = cli("consume", "t", "--skip-corrupt")
    assert skip.stdout == b"".join(v + b"\n" for i, v in enumerate(values) if i != 1)


def test_a_damaged_base_offset_on_a_compacted_topic_is_caught(cli):
    path, data, size = _three(cli, "c", keyed=True)
    struct.pack_into(">q", data, size, 5)  # batch 2 claims offsets 5.. instead of 1..
    path.write_bytes(data)
    out = cli("consume", "c", "--format", "%o %k %s", check=1)
    assert out.stdout == b"0 k1 v1\n"
    assert "offset 1 comes next" in out.stderr.decode()
    skip = cli("consume", "c", "--format", "%o %k %s", "--skip-corrupt")
    assert skip.stdout == b"0 k1 v1\n2 k3 v3\n"
    # starting past it through the index or a scan never prints it under offset 5
    assert cli("consume", "c", "--offset", "2", "--format", "%o %s").stdout == b"2 v3\n"
    assert b"v2" not in cli("consume", "c", "--offset", "1", "--format", "%o %s",
                            "--skip-corrupt").stdout
    v = cli("verify", "c", check=1)
    assert "expected 1" in v.stdout.decode()
    p = cli("produce", "c", "-K", ":", input=b"k4:v4\n", check=1)
    assert "will not truncate" in p.stderr.decode()
    assert path.read_bytes() == bytes(data)


def test_a_damaged_base_offset_of_the_last_batch_is_not_truncated(cli):
    path, data, size = _three(cli)
    struct.pack_into(">q", data, 2 * size, 9)
    path.write_bytes(data)
    out = cli("consume", "t", check=1)
    assert out.stdout == b"rec1\nrec2\n" and "offset 2 comes next" in out.stderr.decode()
    assert cli("consume", "t", "--skip-corrupt").stdout == b"rec1\nrec2\n"
    cli("produce", "t", input=b"rec4\n", check=1)
    assert path.read_bytes() == bytes(data)


# ---------------------------------------------------------------- out-of-range times

def test_out_of_range_times_are_one_line_usage_errors(cli):
    cli("produce", "t", input=b"a\n")
    for t in ("0001-01-01", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00",
              "9" * 40 + "w"):
        out = cli("consume", "t", "--from-time", t, check=2)
        assert out.stderr.decode() == f"fslog: the time {t!r} is out of range: give one " \
            f"between 0001-01-02 and 9999-12-30 (UTC)\n"
        out = cli("group", "reset", "g", "--topic", "t", "--to-datetime", t, check=2)
        assert "out of range" in out.stderr.decode() and out.stderr.count(b"\n") == 1
    assert cli("consume", "t", "--from-time", "0001-01-02").stdout == b"a\n"


# ---------------------------------------------------------------- smaller ones

def test_template_ending_in_a_backslash_still_ends_each_record_with_a_newline(cli):
    cli("produce", "t", input=b"a\nb\n")
    assert cli("consume", "t", "--format", "%s\\").stdout == b"a\\\nb\\\n"
    assert cli("consume", "t", "--format", "%s\\\\").stdout == b"a\\\nb\\\n"
    assert cli("consume", "t", "--format", "%s\\n").stdout == b"a\nb\n"


@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_an_index_replaced_by_a_directory_is_named(cli, suffix):
    cli("produce", "t", input=b"1\n2\n")
    path = cli.segments("t")[0].with_suffix(suffix)
    path.unlink()
    path.mkdir()
    assert cli("consume", "t").stdout == b"1\n2\n"  # derived data: reading goes on
    assert cli("consume", "t", "--from-time", "1h").stdout == b"1\n2\n"
    p = cli("produce", "t", input=b"3\n", check=1)
    assert p.stderr.decode() == f"fslog: {path}: not a regular file (a directory?) where fslog " \
        f"keeps an index; move it away, and the next writer rebuilds the index from the log\n"
    v = cli("verify", check=1)
    assert f"problem: {path}: not a regular file" in v.stdout.decode()
    cli("verify", "--repair", check=1)
    path.rmdir()
    cli("produce", "t", input=b"3\n")
    assert cli("consume", "t").stdout == b"1\n2\n3\n"
    cli("verify")


# ---------------------------------------------------------------- lifecycle

def test_a_recreated_topic_does_not_inherit_the_group_offsets_of_the_deleted_one(cli):
    cli("produce", "d", input=b"".join(b"%d\n" % i for i in range(1, 101)))
    assert len(cli("consume", "d", "--group", "g").stdout.split()) == 100
    cli("topic", "delete", "d")
    cli("produce", "d", input=b"".join(b"%d\n" % i for i in range(1, 11)))
    d = cli("group", "describe", "g", "--json")
    doc = json.loads(d.stdout)
    assert doc["partitions"][0]["committed"] is None
    assert doc["partitions"][0]["stale_committed"] == 100
    assert doc["partitions"][0]["lag"] == 10
    assert "belongs to an earlier topic 'd'" in d.stderr.decode()
    assert "(stale 100)" in cli("group", "describe", "g").stdout.decode()
    out = cli("consume", "d", "--group", "g")
    assert out.stdout == b"".join(b"%d\n" % i for i in range(1, 11))
    doc = _describe(cli)
    assert doc["partitions"][0]["committed"] == 10 and doc["notes"] == []
    # topic ids: two topics of one name never share one
    first = json.loads(cli("topic", "describe", "d", "--json").stdout)["id"]
    cli("topic", "delete", "d")
    cli("topic", "create", "d")
    assert json.loads(cli("topic", "describe", "d", "--json").stdout)["id"] not in (None, first)


def test_a_removed_partition_directory_is_reported_and_not_silently_restarted(cli):
    import shutil
    cli("topic", "create", "d", "--partitions", "2")
    cli("produce", "d", "-p", "1", input=b"a\nb\n")
    pdir = cli.partition_dir("d", 1)
    shutil.rmtree(pdir)
    v = cli("verify", check=1)
    assert f"problem: {pdir}: the directory of partition d/1 is missing" in v.stdout.decode()
    p = cli("produce", "d", "-p", "1", input=b"c\n", check=1)
    assert "will not silently start it again at offset 0" in p.stderr.decode()
    assert not pdir.exists()
    pdir.mkdir()  # what the message says to do, to accept the loss
    cli("produce", "d", "-p", "1", input=b"c\n")
    cli("verify")


@pytest.fixture(scope="module")
def two_topics(tmp_path_factory):
    """A root where ``fslog produce`` made topics a and b, once per module (and worker)."""
    ref = CLI(tmp_path_factory.mktemp("two-topics") / "root")
    ref("produce", "a", input=b"x\n")
    ref("produce", "b", input=b"y\n")
    return ref.root


@pytest.mark.parametrize("partitions", ["1e9", "-1", "true", "0", '"2"', "100001"])
def test_an_absurd_topic_json_is_reported_and_the_other_topics_still_work(cli, two_topics,
                                                                          partitions):
    shutil.copytree(two_topics, cli.root)
    meta = cli.root / "topics" / "b" / "topic.json"
    doc = json.loads(meta.read_text())
    doc["partitions"] = json.loads(partitions)
    meta.write_text(json.dumps(doc))
    want = f"fslog: {meta} is unreadable (\"partitions\" is "
    for args in (["topic", "list"], ["verify"], ["status"]):
        out = cli(*args, check=1, timeout=30)
        assert want in out.stderr.decode() or want[7:] in out.stdout.decode(), (args, out)
        if args != ["verify"]:
            assert b"a" in out.stdout
        else:
            assert "1 topic(s)" not in out.stderr.decode()
    assert cli("consume", "b", check=1).stderr.decode().startswith(want)


def test_a_249_character_topic_and_group_work_end_to_end(cli):
    topic, group = "t" * 249, "g" * 249
    cli("produce", topic, "--partitions", "3", input=b"a\nb\n")
    out = cli("consume", topic, "--group", group)
    assert sorted(out.stdout.split()) == [b"a", b"b"]
    owners = os.listdir(cli.root / "groups" / group / "owners")
    assert len(owners) == 3 and all(len(n) <= 255 for n in owners)
    assert len(set(owners)) == 3
    doc = json.loads(cli("group", "describe", group, "--json").stdout)
    assert [p["lag"] for p in doc["partitions"]] == [0, 0, 0]
    cli("group", "delete", group)
    cli("topic", "delete", topic)
    assert os.listdir(cli.root / "tmp") == []


def test_a_failed_join_leaves_no_member_behind(cli):
    cli("produce", "t", input=b"a\n")
    cli("consume", "t", "--group", "g")
    gdir = cli.root / "groups" / "g"
    (gdir / "owners" / "t-0.lock").unlink()
    (gdir / "owners" / "t-0.lock").mkdir()  # taking the partition fails
    out = cli("consume", "t", "--group", "g", check=1)
    assert "t-0.lock" in out.stderr.decode()
    assert json.loads((gdir / "registry.json").read_bytes())["members"] == {}
    assert os.listdir(gdir / "members") == []


# ---------------------------------------------------------------- stalls

def _describe(cli) -> dict:
    r = cli("group", "describe", "g", "--json", check=None, timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else {"members": [], "partitions": []}


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")


_STOP_INSIDE_UPDATE = """
import os, signal, sys
from fslog.groups.registry import Registry
reg = Registry(sys.argv[1], "g")
calls = []
def change(state):
    if not calls:
        os.kill(os.getpid(), signal.SIGSTOP)  # stopped in the middle of a registry change
    calls.append(1)
    state["touched"] = len(calls)
    return True
reg.update(change)
print("updated", flush=True)
"""


def test_a_process_stopped_in_the_middle_of_a_registry_change_stalls_nobody(cli):
    import subprocess
    import sys

    from conftest import wait_for
    cli("topic", "create", "t", "--partitions", "2")
    # (a session long enough that no member is evicted on a loaded machine: nothing here
    # waits for an eviction)
    b = cli.popen("consume", "t", "--group", "g", "--follow", "--session-timeout", "15")
    wait_for(lambda: _describe(cli)["members"],
             timeout=30, what="member b")
    stuck = subprocess.Popen([sys.executable, "-c", _STOP_INSIDE_UPDATE, str(cli.root)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cli.procs.append(stuck)
    wait_for(lambda: _stopped(stuck.pid), timeout=30, what="the stopped registry change")
    try:
        # a new member joins, and the two split the partitions
        c = cli.popen("consume", "t", "--group", "g", "--follow", "--session-timeout", "15")
        wait_for(lambda: len(_describe(cli)["members"]) == 2,
                 timeout=30, what="member c to join")
        # records produced now are all delivered
        cli("produce", "t", input=b"".join(b"r%d\n" % i for i in range(50)))
        wait_for(lambda: all(p["lag"] == 0 for p in _describe(cli)["partitions"]),
            timeout=30, what="every record delivered")
        # admin commands answer at once (here: refused, the group has live members)
        r = cli("group", "reset", "g", "--topic", "t", "--to-earliest", "--execute", check=1,
                timeout=30)
        assert "live member" in r.stderr.decode()
    finally:
        os.kill(stuck.pid, signal.SIGCONT)
    # resumed, the stopped change is applied on top of the newest state, not over it
    assert stuck.wait(timeout=30) == 0 and stuck.stdout.read() == b"updated\n"
    from fslog.groups.registry import Registry
    state = Registry(str(cli.root), "g", create=False).read()
    # (computed again, at least once: others wrote newer versions while it was stopped, and
    # the members' heartbeats may win the next version too)
    assert state["touched"] >= 2 and len(state["members"]) == 2
    for p in (b, c):
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    out = b.stdout.read() + c.stdout.read()
    assert sorted(out.split()) == sorted(b"r%d" % i for i in range(50))


def test_group_delete_waits_for_a_stopped_member_and_a_deleted_group_is_named(cli):
    import shutil

    from conftest import wait_for
    cli("produce", "t", input=b"a\n")
    a = cli.popen("consume", "t", "--group", "g", "--follow", "--session-timeout", "1")
    wait_for(lambda: _describe(cli)["members"],
             timeout=30, what="member a")
    a.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: not _describe(cli)["members"],
                 timeout=30, what="a to be evicted")
        r = cli("group", "delete", "g", check=1)
        assert "was evicted but its process still runs" in r.stderr.decode()
    finally:
        a.send_signal(signal.SIGCONT)
    wait_for(lambda: _describe(cli)["members"],
             timeout=30, what="a to come back")
    # a group removed under a running member (here by hand): the member says what happened
    gone = cli.root.parent / "gone"
    os.rename(cli.root / "groups" / "g", gone)  # (at once: the member writes meanwhile)
    assert a.wait(timeout=30) == 1
    shutil.rmtree(gone)
    assert b"group 'g' was deleted" in a.stderr.read()
    assert not (cli.root / "groups" / "g").exists()
