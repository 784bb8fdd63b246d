"""Damage in the middle of a log: a flipped byte or a cut-short sealed segment.

`fslog verify` names the file, position and offsets; `fslog consume` writes every record
before the damage and stops with a clear error, never printing damaged data; with
`--skip-corrupt` it reads around the damage and says what it skipped; a group moves
past it. Seeds are fixed: a failing case names its seed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct

import pytest
from conftest import CLI

VALUES = [b"v-%05d-%s" % (i, b"x" * (i % 37)) for i in range(1500)]


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A root with topic t holding VALUES in several segments, made through the CLI once
    per module (and worker); each test damages a copy of it (``_fill``)."""
    ref = CLI(tmp_path_factory.mktemp("filled") / "root")
    ref("topic", "create", "t", "--config", "segment.bytes=6000", "--config", "index.interval.bytes=512")
    ref("produce", "t", "--linger-ms", "0", input=b"".join(v + b"\n" for v in VALUES[:700]))
    ref("produce", "t", input=b"".join(v + b"\n" for v in VALUES[700:]))
    return ref.root


def _fill(cli, filled) -> list[str]:
    shutil.copytree(filled, cli.root)
    d = cli.root / "topics" / "t" / "t-0"
    return sorted(str(d / f) for f in os.listdir(d) if f.endswith(".log"))


def _batches(path: str) -> list[tuple[int, int, int]]:
    """(position, size, base offset) of each batch of a segment."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        out.append((pos, length + 12, base))
        pos += length + 12
    return out


def _is_subsequence(got: list[bytes], want: list[bytes]) -> bool:
    it = iter(want)
    return all(any(g == w for w in it) for g in got)


@pytest.mark.parametrize("seed", range(8))
def test_flipped_byte_is_reported_and_never_printed(cli, filled, seed):
    rnd = random.Random(seed)
    segs = _fill(cli, filled)
    path = rnd.choice(segs[:-1])  # a sealed segment: damage, not a torn tail
    batches = _batches(path)
    pos_b, size_b, base_b = rnd.choice(batches)
    # anywhere in the batch but its partitionLeaderEpoch (bytes 12..15: neither checked by
    # the CRC nor used by anyone, so a flip there is harmless and undetectable)
    where = rnd.choice([i for i in range(size_b) if not 12 <= i < 16])
    data = bytearray(open(path, "rb").read())
    data[pos_b + where] ^= 1 << rnd.randrange(8)
    open(path, "wb").write(data)

    v = cli("verify", "--json", check=1)
    problems = json.loads(v.stdout)["topics"][0]["problems"]
    assert problems and any(p["path"] == path for p in problems), (seed, problems)

    out = cli("consume", "t", check=1)
    got = out.stdout.split(b"\n")[:-1]
    assert got == VALUES[:len(got)], seed                 # a clean prefix, nothing damaged
    assert len(got) <= base_b, seed                       # nothing from the damaged batch on
    assert os.path.basename(path).encode() in out.stderr, out.stderr
    assert len(out.stderr.strip().split(b"\n")) == 1

    skip = cli("consume", "t", "--skip-corrupt")
    got = skip.stdout.split(b"\n")[:-1]
    assert _is_subsequence(got, VALUES) and len(got) < len(VALUES), seed
    missing = set(VALUES) - set(got)
    assert all(base_b <= VALUES.index(m) for m in missing), seed  # only the damaged batch on
    assert b"skipped damaged data" in skip.stderr and os.path.basename(path).encode() in skip.stderr

    # a group reads around it too, commits past it, and a second run has nothing left
    g1 = cli("consume", "t", "--group", "g", "--skip-corrupt")
    assert g1.stdout == skip.stdout
    g2 = cli("consume", "t", "--group", "g", "--skip-corrupt")
    assert g2.stdout == b""


@pytest.mark.parametrize("seed", range(4))
def test_sealed_segment_cut_short_is_damage_not_a_torn_tail(cli, filled, seed):
    rnd = random.Random(100 + seed)
    segs = _fill(cli, filled)
    path = rnd.choice(segs[:-1])
    size = os.path.getsize(path)
    cut = rnd.randrange(1, size)
    os.truncate(path, cut)

    v = cli("verify", "--json", check=1)
    kinds = {p["kind"] for p in json.loads(v.stdout)["topics"][0]["problems"]}
    assert "corrupt" in kinds and "torn-tail" not in kinds, kinds
    cli("verify", "--repair", check=1)           # --repair never cuts acknowledged data
    assert os.path.getsize(path) == cut

    out = cli("consume", "t", check=1)
    got = out.stdout.split(b"\n")[:-1]
    assert got == VALUES[:len(got)]
    skip = cli("consume", "t", "--skip-corrupt")
    got = skip.stdout.split(b"\n")[:-1]
    assert _is_subsequence(got, VALUES) and got[-1] == VALUES[-1]


def test_producer_refuses_to_truncate_damage_in_the_active_segment(cli, filled):
    """Bad bytes with valid batches after them in the active segment are damage: the next
    writer must not truncate them (and the records after them) away as a torn tail."""
    segs = _fill(cli, filled)
    for i in range(3):  # a few more batches in the active segment
        cli("produce", "t", input=b"tail-%d\n" % i)
    path = segs[-1]
    assert len(_batches(path)) >= 2
    data = bytearray(open(path, "rb").read())
    data[30] ^= 0xFF  # inside the first batch's CRC-covered bytes
    open(path, "wb").write(data)
    os.unlink(path[:-4] + ".index")  # the next writer must rebuild it over the damage
    before = os.path.getsize(path)
    cp = cli("produce", "t", input=b"more\n", check=1)
    assert b"will not truncate" in cp.stderr and os.path.basename(path).encode() in cp.stderr
    assert os.path.getsize(path) == before
