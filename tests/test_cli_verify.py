"""``fslog verify [--repair] [--json]`` and how ``fslog consume`` meets damaged logs:
corruption in the middle is reported (file, position, offset) and never printed; a torn
tail is "not yet written" for readers and is cut by --repair or the next writer."""

from __future__ import annotations

import json
import shutil
import struct

import pytest
from conftest import CLI, stderr_lines

HEADER = 61


def batches_of(path) -> list[tuple[int, int, int]]:
    """(position, base offset, total size) of each batch in a .log file."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos + 12 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        out.append((pos, base, length + 12))
        pos += length + 12
    return out


def flip(path, position: int, mask: int = 0x01) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        b = f.read(1)
        f.seek(position)
        f.write(bytes([b[0] ^ mask]))


LINES = [b"record-%05d-%s" % (i, b"v" * (i % 23)) for i in range(3000)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``built(name, *create_args)``: the root of a topic t made with ``fslog topic create
    t ARGS`` and ``fslog produce t`` of LINES, built once per module (and worker) and
    copied for each test that asks: the tests damage their copy, never the original."""
    roots: dict[str, object] = {}

    def root(name: str, *create_args: str):
        if name not in roots:
            c = CLI(tmp_path_factory.mktemp(name) / "root")
            c.create("t", *create_args)
            c.produce("t", b"\n".join(LINES) + b"\n")
            roots[name] = c.root
        return roots[name]
    return root


@pytest.fixture
def one_segment(cli, built):
    """Topic t: one segment of many small batches (max.message.bytes bounds the batches)."""
    shutil.copytree(built("one-segment", "--config", "max.message.bytes=2048"), cli.root)
    segs = cli.segments("t")
    assert len(segs) == 1
    assert len(batches_of(segs[0])) > 20
    return segs[0]


@pytest.fixture
def tiny_segments(cli, built):
    shutil.copytree(built("tiny-segments", "--config", "segment.bytes=4096"), cli.root)
    segs = cli.segments("t")
    assert len(segs) > 10
    return segs


# ------------------------------------------------------------------ clean
def test_verify_clean(cli, tiny_segments):
    cli.produce("u", b"x\n")
    cp = cli("verify")
    assert cp.stdout == b""
    n_batches = sum(len(batches_of(s)) for s in tiny_segments) + 1
    assert cp.stderr == b"fslog: ok: 2 topic(s), %d batches, %d records\n" % (n_batches, len(LINES) + 1)
    cp = cli("verify", "t", "--json")
    doc = json.loads(cp.stdout)
    assert doc["ok"] is True
    (t,) = doc["topics"]
    assert t["topic"] == "t" and t["records"] == len(LINES) and t["problems"] == [] and t["repaired"] == []
    (p,) = t["partitions"]
    assert p == {"partition": 0, "segments": len(tiny_segments), "batches": n_batches - 1,
                 "records": len(LINES), "problems": [], "repaired": []}


def test_verify_empty_root(cli):
    cp = cli("verify")
    assert cp.stderr == b"fslog: ok: 0 topic(s), 0 batches, 0 records\n"
    assert json.loads(cli("verify", "--json").stdout) == {"ok": True, "topics": []}


# ------------------------------------------------------------------ corruption in the middle
def _damage_middle(seg):
    bl = batches_of(seg)
    pos, base, size = bl[len(bl) // 2]
    flip(seg, pos + HEADER + (size - HEADER) // 2)  # a byte of the records, not the header
    return pos, base, size


def test_corrupt_batch_reported_by_verify(cli, one_segment):
    pos, base, _size = _damage_middle(one_segment)
    before = one_segment.read_bytes()
    cp = cli("verify", check=1)
    out = cp.stdout.decode()
    first = out.splitlines()[0]
    assert first.startswith("problem: ")
    assert str(one_segment) in first and f"position {pos}" in first and f"offset {base}" in first
    assert "CRC" in first
    assert "problem(s)" in cp.stderr.decode()

    doc = json.loads(cli("verify", "--json", check=1).stdout)
    assert doc["ok"] is False
    corrupt = [p for p in doc["topics"][0]["problems"] if p["kind"] == "corrupt"]
    assert len(corrupt) == 1
    assert (corrupt[0]["path"], corrupt[0]["position"], corrupt[0]["offset"]) == (str(one_segment), pos, base)

    # --repair never drops acknowledged data in the middle of a log
    cli("verify", "--repair", check=1)
    assert one_segment.read_bytes() == before


def test_corrupt_batch_consume_fails_without_printing_it(cli, one_segment):
    pos, base, size = _damage_middle(one_segment)
    nrec = batches_of(one_segment)[len(batches_of(one_segment)) // 2 + 1][1] - base
    damaged = LINES[base:base + nrec]
    for args in ([], ["--format", "json"], ["--format", "%o %s"]):
        cp = cli("consume", "t", *args, check=1)
        msg = stderr_lines(cp)
        assert len(msg) == 1, msg
        assert str(one_segment) in msg[0] and f"position {pos}" in msg[0]
        for v in damaged:
            assert v not in cp.stdout
    # records after the damage are still reachable by offset
    after = base + nrec
    cp = cli("consume", "t", "--offset", str(after), "-m", "2")
    assert cp.stdout == LINES[after] + b"\n" + LINES[after + 1] + b"\n"


def test_corrupt_batch_consume_prints_the_intact_records_before_it(cli, one_segment):
    # Regression: the reader fetched up to 4 MiB and raised before writing any of it, so
    # nothing was printed (even with -m 10).
    _pos, base, _size = _damage_middle(one_segment)
    cp = cli("consume", "t", check=1)
    assert cp.stdout == b"".join(l + b"\n" for l in LINES[:base])


def test_corrupt_last_batch_of_sealed_segment_consume(cli, tiny_segments):
    # Regression: the damaged batch was taken for a torn tail and silently skipped (exit 0).
    seg = tiny_segments[2]
    pos, base, size = batches_of(seg)[-1]
    flip(seg, pos + HEADER + (size - HEADER) // 2)
    cp = cli("consume", "t", check=None)
    assert cp.returncode == 1
    assert str(seg) in cp.stderr.decode()


def test_corrupt_last_batch_of_sealed_segment_verify_repair(cli, tiny_segments):
    # Regression: verify called it a 'torn-tail' and --repair truncated the sealed segment
    # to 0 bytes, deleting acknowledged records.
    seg = tiny_segments[2]
    pos, base, size = batches_of(seg)[-1]
    flip(seg, pos + HEADER + (size - HEADER) // 2)
    before = seg.read_bytes()
    doc = json.loads(cli("verify", "--json", check=1).stdout)
    kinds = {(p["kind"], p["path"]) for p in doc["topics"][0]["problems"]}
    cli("verify", "--repair", check=None)
    assert seg.read_bytes() == before, "verify --repair destroyed a sealed segment"
    assert ("corrupt", str(seg)) in kinds


def test_corrupt_header_near_segment_end_is_reported_by_consume(cli, one_segment):
    # Regression: a bad header in the last ~4 KiB was taken for tail garbage: consume
    # looped forever (cfe6fe3), then stopped silently with exit 0.
    import subprocess
    bl = batches_of(one_segment)
    pos, base, _size = bl[-2]
    flip(one_segment, pos + 16, 0xFF)  # the magic byte of the second-to-last batch
    cli("verify", check=1)
    try:
        cp = cli("consume", "t", check=None, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("fslog consume hung on a damaged batch header")
    assert cp.returncode == 1
    assert str(one_segment) in cp.stderr.decode() and f"position {pos}" in cp.stderr.decode()


# ------------------------------------------------------------------ torn tail
def _tear(cli, lines_a, lines_b, keep=None):
    """Two produce runs; then cut the last batch (the second run) to ``keep`` bytes
    (default: half of it)."""
    cli.create("t", "--config", "segment.bytes=4096")
    cli.produce("t", b"\n".join(lines_a) + b"\n")
    cli.produce("t", b"\n".join(lines_b) + b"\n")
    seg = cli.segments("t")[-1]
    pos, base, size = batches_of(seg)[-1]
    assert base == len(lines_a)  # the second produce's batch is the last one
    with open(seg, "r+b") as f:
        f.truncate(pos + (size // 2 if keep is None else keep))
    return seg, pos


def test_torn_tail_consume_and_repair(cli):
    a = [b"a-%04d" % i for i in range(700)]
    b = [b"b-%d" % i for i in range(5)]
    seg, pos = _tear(cli, a, b)

    cp = cli("consume", "t")
    assert cp.stdout == b"".join(l + b"\n" for l in a)
    assert cp.stderr == b""
    d = json.loads(cli("topic", "describe", "t", "--json").stdout)
    assert d["partitions"][0]["end_offset"] == len(a)

    cp = cli("verify", check=1)
    out = cp.stdout.decode().splitlines()
    assert len(out) == 1 and out[0].startswith("problem: ")
    assert str(seg) in out[0] and f"position {pos}" in out[0] and "incomplete" in out[0]
    doc = json.loads(cli("verify", "--json", check=1).stdout)
    (prob,) = doc["topics"][0]["problems"]
    assert (prob["kind"], prob["path"], prob["position"], prob["offset"]) == ("torn-tail", str(seg), pos, len(a))

    cp = cli("verify", "--repair")
    assert cp.stdout.decode().startswith("repaired: ")
    assert "1 repair(s)" in cp.stderr.decode()
    assert seg.stat().st_size == pos
    cp = cli("verify")
    assert cp.stdout == b"" and b"ok:" in cp.stderr

    cli.produce("t", b"c\n")
    recs = cli.records("t")
    assert [r.offset for r in recs] == list(range(len(a) + 1))
    assert recs[-1].value == b"c"


@pytest.mark.parametrize("keep", [5, 61, None], ids=["5-bytes", "header-only", "half"])
def test_torn_tail_cut_by_next_producer(cli, keep):
    a = [b"a-%04d" % i for i in range(700)]
    seg, pos = _tear(cli, a, [b"lost-1", b"lost-2"], keep)
    assert cli("consume", "t").stdout == b"".join(l + b"\n" for l in a)
    cli.produce("t", b"after\n")
    recs = cli.records("t")
    assert [r.value for r in recs] == a + [b"after"]
    assert [r.offset for r in recs] == list(range(len(a) + 1))
    cli("verify")


def test_zero_filled_tail_is_not_data(cli):
    # After a power loss some file systems keep the new length of a file but not its
    # data: the tail reads as zeros. Readers take it for "not yet written"; the next
    # writer cuts it.
    cli.create("t", "--config", "segment.bytes=4096")
    cli.produce("t", b"".join(b"r%d\n" % i for i in range(700)))
    seg = cli.segments("t")[-1]
    with open(seg, "ab") as f:
        f.write(bytes(100))
    assert cli("consume", "t").stdout == b"".join(b"r%d\n" % i for i in range(700))
    cli("verify", check=1)
    cli.produce("t", b"next\n")
    assert cli.values("t")[-1] == b"next"
    assert [r.offset for r in cli.records("t")] == list(range(701))
    cli("verify")


def test_zero_filled_tail_repaired_by_verify(cli):
    # Regression: verify called zeros at the end 'corrupt ... not repairable' and --repair
    # refused, while readers and the next writer treated them as a torn tail.
    cli.create("t", "--config", "segment.bytes=4096")
    cli.produce("t", b"".join(b"r%d\n" % i for i in range(700)))
    seg = cli.segments("t")[-1]
    size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(bytes(100))
    doc = json.loads(cli("verify", "--json", check=1).stdout)
    kinds = [p["kind"] for p in doc["topics"][0]["problems"]]
    cli("verify", "--repair", check=None)
    assert seg.stat().st_size == size
    assert kinds == ["torn-tail"]


# ------------------------------------------------------------------ indexes
@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_missing_index_rebuilt(cli, one_segment, suffix):
    idx = one_segment.with_suffix(suffix)
    original = idx.read_bytes()
    assert original  # several entries
    idx.unlink()
    cp = cli("verify", check=1)
    assert str(idx) in cp.stdout.decode() and "missing" in cp.stdout.decode()
    cp = cli("verify", "--repair")
    assert cp.stdout.decode().startswith("repaired: ") and str(idx) in cp.stdout.decode()
    assert idx.read_bytes() == original
    cli("verify")


def test_garbled_index_rebuilt(cli, one_segment):
    idx = one_segment.with_suffix(".index")
    original = idx.read_bytes()
    assert len(original) >= 16
    idx.write_bytes(original[:8] + b"\x00\x00\x00\x07\x00\x00\x00\x05" + original[16:])
    cp = cli("verify", check=1)
    assert str(idx) in cp.stdout.decode()
    # readers do not trust a wrong entry
    assert cli("consume", "t", "--offset", "2000", "-m", "1").stdout == LINES[2000] + b"\n"
    cli("verify", "--repair")
    assert idx.read_bytes() == original
    cli("verify")


def test_verify_one_topic_only(cli, one_segment):
    cli.produce("other", b"x\n")
    _damage_middle(one_segment)
    cp = cli("verify", "other")
    assert b"ok: 1 topic(s)" in cp.stderr
    cli("verify", "t", check=1)


def test_verify_reports_unreadable_topic_config_and_goes_on(cli):
    cli.produce("good", b"x\n")
    cli.create("bad")
    cfg = cli.root / "topics" / "bad" / "topic.json"
    cfg.write_text("{garbage")
    doc = json.loads(cli("verify", "--json", check=1).stdout)
    assert doc["ok"] is False
    assert [t["topic"] for t in doc["topics"]] == ["bad", "good"]
    assert str(cfg) in json.dumps(doc["topics"][0]["problems"])
