"""Damage that used to break fslog's promises (issue 11), each as a user meets it.

Three one-line produces make three small batches; one flipped bit or one changed field
in the middle of the active segment must not hide the partition, must not be taken for
a torn tail, and must not print records under offsets they never had.
"""

from __future__ import annotations

import json
import struct

import pytest


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
