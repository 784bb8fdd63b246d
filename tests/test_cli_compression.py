"""Compressed topics end to end through the real CLI: ``fslog produce --compression``,
then consume in every format, ``--exec``, groups, ``verify``, compaction and ``topic
describe``; kafka-python reads the segments fslog writes, and fslog reads batches that
kafka-python's own encoder compressed (stored as a broker stores what clients send)."""

from __future__ import annotations

import json
import struct

import pytest
from conftest import CLI
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka_judge import kafka_batches, kafka_records

from fslog.records import batch as rb
from fslog.records import compression as c

CODECS = ["gzip", "snappy", "lz4", "zstd"]
SMALL = ["--config", "segment.bytes=4096"]  # several segments, several batches


def lines(n: int, keyed: bool = False) -> bytes:
    # compressible: a handful of users and words (clients skip compression that does not
    # shrink, and so does fslog)
    if keyed:
        return b"".join(b"user-%d:{\"n\": %d, \"event\": \"click\", \"page\": \"/a/b\"}\n"
                        % (i % 37, i) for i in range(n))
    return b"".join(b"line %06d of a log that says hello hello hello\n" % i for i in range(n))


def batch_headers(path) -> list[rb.BatchHeader]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        h = rb.check_batch(data, pos, len(data))
        out.append(h)
        pos += h.size
    return out


def codecs_on_disk(cli, topic: str) -> set[int]:
    return {h.attributes & rb.COMPRESSION_MASK
            for p in range(cli.log().topic(topic).partition_count)
            for s in cli.segments(topic, p) for h in batch_headers(s)}


def records_by_codec(cli, topic: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for p in range(cli.log().topic(topic).partition_count):
        for s in cli.segments(topic, p):
            for h in batch_headers(s):
                k = h.attributes & rb.COMPRESSION_MASK
                out[k] = out.get(k, 0) + h.record_count
    return out


def verify(cli, topic: str, check: int = 0) -> dict:
    """``fslog verify TOPIC --json``: the topic's report (batches, records, problems)."""
    out = json.loads(cli("verify", topic, "--json", check=check).stdout)
    assert out["ok"] == (check == 0)
    return out["topics"][0]


def without_timestamps(out: bytes) -> list[dict]:
    rows = [json.loads(x) for x in out.splitlines()]
    for r in rows:
        r.pop("timestamp")
        r.pop("topic")
    return rows


KEYED_ARGS = ["--key-separator", ":", "--header", "src=web"]
TEMPLATE = ["--format", "%p@%o %k=%s %h"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The uncompressed reference, made once per module (and worker) through the CLI:
    topic plain (2 partitions, small segments) holding ``lines(6000, keyed=True)``, its
    size on disk, and what ``fslog consume`` prints of it in each format compared below."""
    ref = CLI(tmp_path_factory.mktemp("plain") / "root")
    ref.create("plain", "--partitions", "2", *SMALL)
    ref.produce("plain", lines(6000, keyed=True), *KEYED_ARGS)
    return {
        "size": sum(s.stat().st_size for p in (0, 1) for s in ref.segments("plain", p)),
        "default": ref("consume", "plain").stdout,
        "json": without_timestamps(ref("consume", "plain", "--format", "json").stdout),
        "template": ref("consume", "plain", *TEMPLATE).stdout,
        "last": ref("consume", "plain", "--last", "3", *TEMPLATE).stdout,
    }


@pytest.mark.parametrize("codec", CODECS)
def test_produce_compressed_consume_every_format(cli, codec, plain):
    cli.create("z", "--partitions", "2", *SMALL)
    data = lines(6000, keyed=True)
    cp = cli("produce", "z", "--compression", codec, "--json", *KEYED_ARGS, input=data)
    summary = json.loads(cp.stdout)
    assert summary["records"] == 6000
    # (a batch of a record or two that compression does not shrink stays uncompressed)
    by_codec = records_by_codec(cli, "z")
    assert set(by_codec) <= {c.CODECS[codec], 0} and by_codec[c.CODECS[codec]] > 5900
    assert len(cli.segments("z", 0)) > 1 or len(cli.segments("z", 1)) > 1
    on_disk = sum(s.stat().st_size for p in (0, 1) for s in cli.segments("z", p))
    assert summary["bytes"] == on_disk < plain["size"] / 2
    # every format reads the same as from the uncompressed topic
    assert cli("consume", "z").stdout == plain["default"]
    assert without_timestamps(cli("consume", "z", "--format", "json").stdout) == plain["json"]
    assert cli("consume", "z", *TEMPLATE).stdout == plain["template"]
    # from an offset in the middle of a compressed batch, and the last N
    mid = cli("consume", "z", "--partition", "0", "--offset", "7", *TEMPLATE).stdout.splitlines()
    assert mid[0].startswith(b"0@7 ")
    assert cli("consume", "z", "--last", "3", *TEMPLATE).stdout == plain["last"]
    # kafka-python reads every segment and agrees record for record
    for p in (0, 1):
        ours = [(r.offset, r.timestamp, r.key, r.value, r.headers)
                for r in cli.records("z", partitions=[p])]
        theirs = []
        for s in cli.segments("z", p):
            assert c.CODECS[codec] in {b.compression_type for b in kafka_batches(s.read_bytes())}
            theirs += kafka_records(s.read_bytes())
        assert theirs == ours and len(ours) > 1000
    # verify reads the records inside
    rep = verify(cli, "z")
    assert rep["records"] == 6000 and not rep["problems"]


def test_exec_and_groups_read_compressed_batches(cli, tmp_path):
    cli.create("z", "--partitions", "3", *SMALL)
    cli.produce("z", lines(3000, keyed=True), "--key-separator", ":", "--compression", "zstd")
    out = tmp_path / "seen"
    # each command gets up to 100 records on stdin, one "partition offset" line each
    cli("consume", "z", "--group", "g", "--format", "%p %o", "--exec", f"cat >> {out}",
        "--batch", "100")
    seen = sorted(tuple(map(int, x.split())) for x in out.read_text().splitlines())
    assert seen == sorted((r.partition, r.offset) for r in cli.records("z"))
    assert len(seen) == 3000
    # the group's offsets are at the end: nothing more to read
    assert cli("consume", "z", "--group", "g").stdout == b""
    cli("group", "reset", "g", "--topic", "z", "--to-earliest", "--execute")
    assert len(cli("consume", "z", "--group", "g").stdout.splitlines()) == 3000


def test_topic_compression_type_config(cli):
    cli.create("t", "--config", "compression.type=lz4")
    cli.produce("t", lines(2000))
    assert codecs_on_disk(cli, "t") == {c.LZ4}
    # a codec in the topic's config wins over the producer's, as on a Kafka broker
    cli.produce("t", lines(2000), "--compression", "gzip")
    assert codecs_on_disk(cli, "t") == {c.LZ4}
    cli("topic", "alter", "t", "--config", "compression.type=uncompressed")
    cli.produce("t", lines(2000), "--compression", "gzip")
    assert codecs_on_disk(cli, "t") == {c.LZ4, c.NONE}
    cli("topic", "alter", "t", "--config", "compression.type=producer")
    cli.produce("t", lines(2000), "--compression", "snappy")
    assert codecs_on_disk(cli, "t") == {c.LZ4, c.NONE, c.SNAPPY}
    d = json.loads(cli("topic", "describe", "t", "--json").stdout)
    assert d["config"]["compression.type"] == "producer"
    assert d["partitions"][0]["end_offset"] == 8000
    assert cli("consume", "t").stdout == lines(2000) * 4
    cp = cli("topic", "alter", "t", "--config", "compression.type=brotli", check=1)
    assert "compression.type" in cp.stderr.decode() and "zstd" in cp.stderr.decode()


def test_bad_compression_name_is_usage_error(cli):
    cp = cli("produce", "t", "--compression", "brotli", input=b"x\n", check=2)
    assert "--compression 'brotli'" in cp.stderr.decode()
    assert not (cli.root / "topics" / "t").exists()


@pytest.mark.parametrize("codec", CODECS)
def test_fslog_reads_batches_compressed_by_kafka_python(cli, codec):
    """A segment holding batches as kafka-python's producer builds them (the bytes a
    broker stores as sent): fslog consume, verify and the library read them."""
    cli.create("k")
    want = []
    batches = []
    for b in range(3):
        builder = DefaultRecordBatchBuilder(magic=2, compression_type=c.CODECS[codec],
                                            is_transactional=False, producer_id=-1,
                                            producer_epoch=-1, base_sequence=-1,
                                            batch_size=1 << 20)
        for i in range(200):
            n = b * 200 + i
            key = b"user-%d" % (n % 7) if n % 4 else None
            builder.append(i, timestamp=1_700_000_000_000 + n, key=key,
                           value=b'{"n": %d, "text": "hello hello"}' % n,
                           headers=[("h", b"x")] if n % 3 == 0 else [])
            want.append((n, key, b'{"n": %d, "text": "hello hello"}' % n))
        batches.append(bytearray(builder.build()))
    log = cli.log()
    p = log.topic("k").partition(0)
    p.append(batches)
    p.sync()
    p.close()
    assert codecs_on_disk(cli, "k") == {c.CODECS[codec]}
    js = [json.loads(x) for x in cli("consume", "k", "--format", "json").stdout.splitlines()]
    assert [(j["offset"], j["key"] and j["key"].encode(), j["value"].encode()) for j in js] \
        == want
    assert cli("consume", "k").stdout == b"".join(v + b"\n" for _o, _k, v in want)
    rep = verify(cli, "k")
    assert rep["records"] == 600 and not rep["problems"]
    assert [(r.offset, r.key, r.value) for r in cli.records("k")] == want


def _bad_compressed_batch(base_offset: int) -> bytearray:
    """A CRC-valid batch that says zstd but whose records are not a zstd stream."""
    b = rb.encode_values([b"not compressed at all"] * 3, 1_700_000_000_000, base_offset)
    struct.pack_into(">h", b, 21, c.ZSTD)
    struct.pack_into(">I", b, 17, rb.crc32c(bytes(b[rb.CRC_START:])))
    return b


def test_verify_and_consume_report_a_batch_that_does_not_decompress(cli):
    cli.create("z")
    cli.produce("z", lines(500), "--compression", "lz4")
    p = cli.log().topic("z").partition(0)
    p.append([_bad_compressed_batch(0)])
    p.sync()
    p.close()
    cli.produce("z", lines(500), "--compression", "lz4")
    rep = verify(cli, "z", check=1)
    [prob] = rep["problems"]
    assert prob["kind"] == "corrupt" and prob["offset"] == 500
    assert "zstd data does not decompress" in prob["message"]
    assert rep["records"] == 1000
    cp = cli("consume", "z", check=1)
    assert cp.stdout == lines(500)  # the records before it, then a one-line error
    assert "zstd data does not decompress" in cp.stderr.decode()
    assert "offset 500" in cp.stderr.decode()


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_torn_compressed_tail_is_cut_by_the_next_producer(cli, codec):
    cli.create("z")
    cli.produce("z", lines(1000), "--compression", codec)
    cli.produce("z", lines(1000), "--compression", codec)
    [seg] = cli.segments("z")
    hs = batch_headers(seg)
    size = seg.stat().st_size
    with open(seg, "r+b") as f:  # a write cut short: half of the last batch
        f.truncate(size - hs[-1].size // 2)
    rep = verify(cli, "z", check=1)
    kinds = [p["kind"] for p in rep["problems"]]  # (and index entries into the torn batch)
    assert kinds[0] == "torn-tail" and set(kinds[1:]) <= {"index"}
    # the records of the torn batch are not there yet for readers; the rest is
    written = (lines(1000) + lines(1000)).splitlines(keepends=True)
    assert cli("consume", "z").stdout == b"".join(written[:2000 - hs[-1].record_count])
    cp = cli("produce", "z", "--compression", codec, input=b"after\n")
    assert "truncated" in cp.stderr.decode()
    assert cli("verify", "z").returncode == 0
    assert cli("consume", "z", "--last", "1").stdout == b"after\n"


@pytest.mark.parametrize("codec", ["snappy", "lz4"])
def test_compaction_keeps_the_codec(cli, codec):
    cli.create("t", "--config", "cleanup.policy=compact", "--config", "segment.bytes=16384",
               "--config", "min.cleanable.dirty.ratio=1.0")  # only --compact-now
    data = b"".join(b"user-%d:{\"n\": %d, \"event\": \"click\"}\n" % (i % 500, i)
                    for i in range(4000)) + b"user-3:NULL\n" + lines(300, keyed=True)
    cli.produce("t", data, "--key-separator", ":", "--null-marker", "NULL",
                "--compression", codec)
    before = {r.offset: (r.key, r.value) for r in cli.records("t")}
    out = json.loads(cli("clean", "t", "--compact-now", "--json").stdout)
    comp = out["partitions"][0]["compaction"]
    assert comp["ran"] and comp["records_removed"] > 2000
    after = {r.offset: (r.key, r.value) for r in cli.records("t")}
    assert all(before[o] == kv for o, kv in after.items())
    latest = {}
    for o in sorted(before):
        latest[before[o][0]] = o
    assert set(latest.values()) <= set(after)  # every key's latest record survives
    # the cleaned batches are compressed with the codec they came from (those that
    # shrink); kafka-python reads them all
    segs = cli.segments("t")
    cleaned = [h for s in segs[:-1] for h in batch_headers(s) if h.record_count > 5]
    assert cleaned and {h.attributes & rb.COMPRESSION_MASK for h in cleaned} == \
        {c.CODECS[codec]}
    theirs = [r for s in segs for r in kafka_records(s.read_bytes())]
    assert [(r[0], r[2], r[3]) for r in theirs] == \
        [(o, k, v) for o, (k, v) in sorted(after.items())]
    cli("verify", "t")
    assert cli("consume", "t", "--format", "%k").stdout.count(b"\n") == len(after)


# ------------------------------------------------------------------ librdkafka's batches

def _fetch_raw(host: str, port: int, topic: str, timeout: float = 10.0) -> bytes:
    """Partition 0 of ``topic`` from offset 0 as a broker stores it: the records bytes of
    a Kafka Fetch v4 response, over a plain socket (no client decodes them first)."""
    import socket
    t = topic.encode()
    body = struct.pack(">iiiib", -1, 100, 1, 64 << 20, 0)  # replica, wait, min, max, isolation
    body += struct.pack(">ih", 1, len(t)) + t + struct.pack(">iiqi", 1, 0, 0, 64 << 20)
    client = b"fslog-test"
    req = struct.pack(">hhih", 1, 4, 7, len(client)) + client + body  # Fetch v4, header v1
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        f = s.makefile("rb")
        (size,) = struct.unpack(">i", f.read(4))
        resp = f.read(size)
    p = 12  # correlation id, throttle time, topic count (1)
    (tl,) = struct.unpack_from(">h", resp, p)
    p += 2 + tl + 4  # topic name, partition count (1)
    _part, err, _hw, _lso, aborted = struct.unpack_from(">ihqqi", resp, p)
    assert err == 0, f"Fetch error code {err}"
    p += 26 + max(aborted, 0) * 16
    (n,) = struct.unpack_from(">i", resp, p)
    return resp[p + 4:p + 4 + n]


@pytest.mark.parametrize("codec", CODECS)
def test_fslog_reads_batches_compressed_by_librdkafka(cli, codec):
    """librdkafka (confluent-kafka) compresses batches itself (snappy as one raw block, not
    xerial). Without a broker of our own: librdkafka's in-process mock cluster (on
    127.0.0.1) takes the produce, a raw Fetch takes the stored batches back, and they are
    appended to an fslog partition as they are."""
    ck = pytest.importorskip("confluent_kafka")
    p = ck.Producer({"test.mock.num.brokers": 1, "compression.codec": codec,
                     "linger.ms": 20, "log_level": 3,
                     # no duplicate or reordered batch if a request is retried on a busy machine
                     "enable.idempotence": True})
    want = [(b"k%d" % (i % 5), b'{"n": %d, "text": "hello hello hello"}' % i)
            for i in range(600)]
    for k, v in want:
        p.produce("t", value=v, key=k, partition=0, headers=[("h", b"1")])
    assert p.flush(30) == 0
    broker = next(iter(p.list_topics(timeout=10).brokers.values()))
    data = _fetch_raw(broker.host, broker.port, "t")
    del p
    batches, pos = [], 0
    while pos < len(data):
        h = rb.check_batch(data, pos, len(data))
        assert h.attributes & rb.COMPRESSION_MASK == c.CODECS[codec]
        batches.append(bytearray(data[pos:pos + h.size]))
        pos += h.size
    if codec == "snappy":  # librdkafka's snappy: a raw block, not the xerial framing
        assert not bytes(batches[0][rb.HEADER_SIZE:]).startswith(c.XERIAL_MAGIC)
    cli.create("r")
    part = cli.log().topic("r").partition(0)
    part.append(batches)
    part.sync()
    part.close()
    assert [(r.key, r.value, r.headers) for r in cli.records("r")] == \
        [(k, v, (("h", b"1"),)) for k, v in want]
    assert cli("consume", "r").stdout == b"".join(v + b"\n" for _k, v in want)
    rep = verify(cli, "r")
    assert rep["records"] == 600 and not rep["problems"]
