"""The bulk paths of keyed and JSON records (issue 14): the keyed batch encoder and
decoder against the general ones and kafka-python, the murmur2 partition cache, and
``fslog produce -K`` / ``--format json`` giving exactly the records the line-by-line
path gives (partitions, keys, values, errors by line)."""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_judge import kafka_records

from fslog.records import batch as rb
from fslog.records import partitioner as P

# bytes that look like record framing, so that splits at the wrong place are tried
_framing_bytes = st.binary(max_size=40) | st.lists(
    st.sampled_from([b"\x00", b"\x01", b"\x02", b"\x7f", b"\x80", b"\x81\x01", b"\x00\x00",
                     b"\xc8\x01", b"a", b"\x00\x10\x00\x00\x02\x04"]), max_size=12).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_framing_bytes, _framing_bytes | st.binary(min_size=60, max_size=300)),
                min_size=1, max_size=60), st.integers(0, 1 << 40))
def test_encode_keyed_is_encode_records_and_decode_is_exact(recs, ts):
    keys = [k for k, _ in recs]
    values = [v for _, v in recs]
    data = bytes(rb.encode_keyed(keys, values, ts))
    assert data == bytes(rb.encode_records([(k, v, ts, ()) for k, v in recs]))
    h = rb.read_header(data, 0)
    got = rb.decode_keyed(data, 0, h)
    if got is not None:  # None only means: the general decoder decides
        assert got == (keys, values)
        assert rb.decode_keyed(data, 0, h, with_keys=False) == (None, values)
        assert rb.decode_keyed(data, 0, h, with_values=False) == (keys, None)
    assert [(r[2], r[3]) for r in kafka_records(data)] == recs


def test_decode_keyed_takes_typical_batches():
    keys = [b"k%d" % (i % 100) for i in range(5000)]
    values = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i % 300)) for i in range(5000)]
    data = bytes(rb.encode_keyed(keys, values, 17))
    assert rb.decode_keyed(data, 0, rb.read_header(data, 0)) == (keys, values)


def test_decode_keyed_refuses_other_shapes():
    def dec(recs, **kw):
        data = bytes(rb.encode_records(recs, **kw))
        return rb.decode_keyed(data, 0, rb.read_header(data, 0))
    assert dec([(b"k", b"v", 5, ()), (b"k", b"w", 6, ())]) is None       # timestamp deltas
    assert dec([(b"k", b"v", 5, [("h", b"x")])]) is None                 # headers
    assert dec([(b"k", None, 5, ())]) is None                            # a tombstone
    assert dec([(None, b"v", 5, ()), (b"k", b"v", 5, ())]) is None       # a null key
    assert dec([(b"k", b"v", 5, ()), (b"k", b"w", 5, ())], offset_deltas=[0, 2]) is None
    data = bytes(rb.encode_values([b"a", b"b"], 5))                      # keyless
    assert rb.decode_keyed(data, 0, rb.read_header(data, 0)) is None


def test_decode_keyed_never_wrong_on_damaged_bytes():
    """Any single byte changed (CRC fixed up, as a faulty producer would write): the
    decoder gives the records the general decoder gives, or None."""
    keys = [b"key-%d" % i for i in range(20)]
    values = [b"value \x00\x01 %d" % i * (i % 4) for i in range(20)]
    good = bytes(rb.encode_keyed(keys, values, 3))
    rnd = random.Random(5)
    for _ in range(3000):
        buf = bytearray(good)
        i = rnd.randrange(rb.HEADER_SIZE, len(buf))
        buf[i] = rnd.randrange(256)
        data = bytes(buf)
        h = rb.read_header(data, 0)
        got = rb.decode_keyed(data, 0, h)
        if got is None:
            continue
        recs = rb.decode_records(data, 0, h)
        assert got == ([r.key for r in recs], [r.value for r in recs])
        assert all(r.headers == () and r.timestamp == 3 for r in recs)
        assert [r.offset for r in recs] == list(range(len(recs)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"k1", b"key", b"\x00\x04", b"\x02\x00\x00\x00\x04"]),
                          _framing_bytes), min_size=1, max_size=40),
       st.integers(0, 200), st.integers(0, 255))
def test_split_paths_never_wrong_on_damaged_bytes(recs, where, byte):
    """The split decoders (keys of lengths seen before: values and keys as the regex cuts
    them) against the general decoder, on good batches and on a byte changed."""
    keys = [k for k, _ in recs]
    values = [v for _, v in recs]
    good = bytes(rb.encode_keyed(keys, values, 3))
    rb._learn_key_lengths(keys)  # as after an earlier batch with these key lengths
    assert rb._split_keyed(good, 0, len(good), len(keys)) in (None, (keys, values))
    assert rb._split_values(good, 0, len(good), len(keys)) in (None, values)
    buf = bytearray(good)
    buf[rb.HEADER_SIZE + where % (len(buf) - rb.HEADER_SIZE)] = byte
    data = bytes(buf)
    h = rb.read_header(data, 0)
    for with_keys, with_values in ((True, True), (False, True), (True, False)):
        got = rb.decode_keyed(data, 0, h, with_keys, with_values)
        if got is None:
            continue
        recs2 = rb.decode_records(data, 0, h)
        assert all(r.headers == () and r.timestamp == 3 for r in recs2)
        assert [r.offset for r in recs2] == list(range(len(recs2)))
        assert got == ([r.key for r in recs2] if with_keys else None,
                       [r.value for r in recs2] if with_values else None)


def test_split_values_checks_each_record_length_not_their_sum():
    """Two records' length varints changed in opposite directions (their sum kept, CRC
    fixed up as a faulty producer would write it): the values-only split gives None or
    the general decoder's values, never a cut of its own."""
    keys = [b"k%d" % (i % 50) for i in range(200)]  # keys of 2 and 3 bytes
    values = [b"v%03d" % i for i in range(200)]
    good = bytes(rb.encode_keyed(keys, values, 3))
    rb._learn_key_lengths(keys)
    assert rb._split_values(good, 0, len(good), len(keys)) == values
    starts = []  # where each record's length varint is
    p = rb.HEADER_SIZE
    for _ in keys:
        starts.append(p)
        length, q = rb.read_varint(good, p)
        p = q + length
    rnd = random.Random(7)
    for _ in range(400):
        i, j = rnd.sample(range(len(keys)), 2)
        buf = bytearray(good)
        buf[starts[i]] += 2  # zigzag: length + 1
        buf[starts[j]] -= 2  # length - 1
        struct_crc = rb.crc32c_range(buf, rb.CRC_START, len(buf))
        buf[17:21] = struct_crc.to_bytes(4, "big")
        data = bytes(buf)
        got = rb._split_values(data, 0, len(data), len(keys))
        if got is None:
            continue
        try:
            recs = rb.decode_records(data, 0, rb.read_header(data, 0))
        except Exception:
            raise AssertionError(f"records {i} and {j}: accepted what the general decoder "
                                 f"refuses") from None
        assert got == [r.value for r in recs]


def test_split_paths_take_typical_batches():
    keys = [b"k%d" % (i % 1000) for i in range(3000)]
    values = [b'{"n":%d}' % i for i in range(3000)]
    data = bytes(rb.encode_keyed(keys, values, 9))
    h = rb.read_header(data, 0)
    assert rb.decode_keyed(data, 0, h) == (keys, values)  # learns the key lengths
    assert rb._split_keyed(data, 0, len(data), 3000) == (keys, values)
    assert rb._split_values(data, 0, len(data), 3000) == values
    assert rb.decode_keyed(data, 0, h, with_keys=False) == (None, values)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_framing_bytes, _framing_bytes | st.binary(min_size=60, max_size=300),
                          st.booleans()), min_size=1, max_size=90), st.integers(0, 1 << 40),
       st.integers(0, 1 << 40), st.integers(0, 1000))
def test_encode_keyed_compacted_is_encode_compacted(recs, base, ts, extra):
    """What compaction keeps of a keyed batch, encoded by tables: byte for byte what the
    general encoder writes for the same records, and kafka-python reads it."""
    kept = [(i, k, v) for i, (k, v, keep) in enumerate(recs) if keep] or [(0, recs[0][0], recs[0][1])]
    deltas = [i for i, _, _ in kept]
    last = base + len(recs) - 1 + extra
    got = rb.encode_keyed_compacted([k for _, k, _ in kept], [v for _, _, v in kept], deltas,
                                    ts, base, last)
    want = rb.encode_compacted([rb.Record(base + i, ts, k, v, ()) for i, k, v in kept], base, last)
    assert got == want
    assert [(r[0], r[2], r[3]) for r in kafka_records(bytes(got))] == \
        [(base + i, k, v) for i, k, v in kept]


def test_extend_range_changes_only_the_last_offset():
    keys = [b"k%d" % i for i in range(10)]
    data = bytes(rb.encode_keyed(keys, [b"v"] * 10, 7, base_offset=100))
    out = rb.extend_range(data, 150)
    h = rb.read_header(out, 0)
    assert (h.base_offset, h.last_offset, h.record_count) == (100, 150, 10)
    assert rb.crc_ok(out, 0, h) and out[61:] == data[61:]
    assert [(r[0], r[2]) for r in kafka_records(bytes(out))] == [(100 + i, k) for i, k in enumerate(keys)]


def _learn_only(keys):
    """Reset what the split knows to these keys' lengths (module state: restored by the
    next batch of other lengths, which are learned again)."""
    rb._SPLIT_KEY_LENGTHS = frozenset()
    rb._learn_key_lengths(keys)


def test_split_with_one_key_length_takes_lengths_from_tables():
    """One key length known: record lengths come from per-range tables (offset deltas
    of 1, 2 and 3 bytes, values of 1- to 3-byte lengths), exactly as the general check."""
    keys = [b"u-%05d" % (i % 977) for i in range(9000)]
    values = [b"v" * ((i * 37) % 200) + (b"x" * 9000 if i in (5, 100, 8500) else b"")
              for i in range(9000)]
    data = bytes(rb.encode_keyed(keys, values, 9))
    _learn_only(keys)
    assert rb._SPLIT_HEADS is not None
    assert rb._split_keyed(data, 0, len(data), len(keys)) == (keys, values)
    assert rb.decode_keyed(data, 0, rb.read_header(data, 0), with_values=False) == (keys, None)
    rnd = random.Random(7)
    small = bytes(rb.encode_keyed(keys[:150], values[:150], 9))
    for _ in range(1500):  # a byte changed anywhere: the general decoder's records, or None
        buf = bytearray(small)
        buf[rnd.randrange(rb.HEADER_SIZE, len(buf))] = rnd.choice([0, 1, 2, 14, 0x80, rnd.randrange(256)])
        got = rb._split_keyed(bytes(buf), 0, len(buf), 150)
        if got is None:
            continue
        try:
            recs = rb.decode_records(bytes(buf), 0, rb.read_header(bytes(buf), 0))
        except Exception:
            raise AssertionError(f"accepted a batch the general decoder refuses: {got}") from None
        assert all(r.headers == () and r.timestamp == 9 for r in recs)
        assert [r.offset for r in recs] == list(range(150))
        assert got == ([r.key for r in recs], [r.value for r in recs])
    _learn_only([b"k", b"key"])  # two lengths: the general check
    assert rb._SPLIT_HEADS is None


def test_murmur2_is_kafkas():
    # values from Kafka's UtilsTest
    assert P.murmur2(b"21") == -973932308
    assert P.murmur2(b"foobar") == -790332482
    assert P.murmur2(b"a-little-bit-long-string") == -985981536
    assert P.murmur2(b"a-little-bit-longer-string") == -1486304829
    assert P.murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert P.murmur2(b"abc") == 479470107


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.integers(0, 40).flatmap(lambda n: st.lists(st.binary(min_size=n, max_size=n),
                                                      min_size=1, max_size=80)))
def test_murmur2_of_many_keys_at_once_is_murmur2(keys):
    assert P.murmur2_positive_all(keys) == [P.murmur2(k) & 0x7FFFFFFF for k in keys]


def test_key_partitioner_unique_keys_of_many_lengths():
    rnd = random.Random(5)
    keys = [rnd.randbytes(rnd.randrange(0, 30)) for _ in range(20000)]
    want = [P.partition_for_key(k, 12) for k in keys]
    assert P.KeyPartitioner(12, cache_size=1000).partition_all(keys) == want  # no cache
    kp = P.KeyPartitioner(12)
    assert kp.partition_all(keys) == want == kp.partition_all(keys)  # then from the cache


def test_key_partitioner_cache_is_bounded_and_right():
    kp = P.KeyPartitioner(7, cache_size=50)
    keys = [b"u-%d" % i for i in range(400)] * 2
    assert kp.partition_all(keys) == [P.partition_for_key(k, 7) for k in keys]
    assert len(kp._cache) <= 50
    split = kp.split(keys, list(range(len(keys))))
    for p, (ks, vs) in split.items():
        assert all(P.partition_for_key(k, 7) == p for k in ks)
        assert vs == sorted(vs)
    assert sum(len(ks) for ks, _ in split.values()) == len(keys)


# ------------------------------------------------------------------ through the CLI

def _by_partition(cli, topic):
    out = {}
    for r in cli.records(topic):
        out.setdefault(r.partition, []).append((r.key, r.value))
    return out


def _expected(pairs, partitions):
    out = {}
    for k, v in pairs:
        out.setdefault(P.partition_for_key(k, partitions), []).append((k, v))
    return out


def test_produce_key_separator_bulk(cli):
    pairs = [(b"k%d" % (i % 37), b"value %d :: x" % i) for i in range(20000)]
    cli("topic", "create", "t", "--partitions", "4")
    cli("produce", "t", "-K", ":", input=b"".join(k + b":" + v + b"\n" for k, v in pairs))
    assert _by_partition(cli, "t") == _expected(pairs, 4)


def test_produce_key_separator_bad_line_in_a_chunk(cli):
    lines = [b"k%d:v%d" % (i, i) for i in range(1000)]
    lines[700] = b"no separator here"
    cp = cli("produce", "t", "-K", ":", input=b"\n".join(lines) + b"\n", check=1)
    assert b"line 701: no key separator ':'" in cp.stderr
    assert [r.key for r in cli.records("t")] == [b"k%d" % i for i in range(700)]
    cli("produce", "u", "-K", ":", "--skip-invalid", input=b"\n".join(lines) + b"\n")
    assert len(cli.records("u")) == 999


def test_produce_json_bulk_matches_line_by_line(cli):
    docs = [{"user_id": "u-%d" % (i % 50), "n": i, "s": "é\u2028"} for i in range(3000)]
    lines = [json.dumps(d, ensure_ascii=False).encode() for d in docs]
    # a chunk the bulk path leaves to the line-by-line one: numbers as keys, blank lines
    odd = [b'{"user_id": 12345678901234567890123, "n": 1}', b"", b'  {"user_id": 1.5}  ',
           b'{"user_id": "u-1"}']
    cli("topic", "create", "t", "--partitions", "3")
    cli("produce", "t", "--format", "json", "--key-field", "user_id",
        input=b"\n".join(lines) + b"\n")
    assert _by_partition(cli, "t") == _expected(
        [(("u-%d" % (i % 50)).encode(), ln) for i, ln in enumerate(lines)], 3)
    cli("topic", "create", "o", "--partitions", "3")
    cli("produce", "o", "--format", "json", "--key-field", "user_id", input=b"\n".join(odd))
    got = sorted((r.key, r.value) for r in cli.records("o"))
    assert got == sorted([(b"12345678901234567890123", odd[0]), (b"1.5", odd[2]),
                          (b"u-1", odd[3])])


def test_produce_json_errors_named_by_line(cli):
    lines = [b'{"a": %d}' % i for i in range(500)]
    lines[300] = b'{"a": NaN}'
    cp = cli("produce", "t", "--format", "json", input=b"\n".join(lines) + b"\n", check=1)
    assert b"line 301: not valid JSON" in cp.stderr
    assert len(cli.records("t")) == 300
    lines[300] = b'{"a": 1e999}'
    cp = cli("produce", "u", "--format", "json", input=b"\n".join(lines) + b"\n", check=1)
    assert b"line 301: not valid JSON" in cp.stderr
    lines[300] = b'{"b": 1}'
    cp = cli("produce", "v", "--format", "json", "--key-field", "a",
             input=b"\n".join(lines) + b"\n", check=1)
    assert b"line 301: --key-field a: the field is missing" in cp.stderr


# ------------------------------------------------------------------ bulk ingest vs line by line

def _ingest(root, data: bytes, bulk: bool, partitions: int = 3, **opts):
    """Records (partition, offset, key, value), the error and the skipped lines of one
    LineIngester run over ``data``, with its bulk path on or off."""
    import tempfile

    import fslog
    from fslog.clients.ingest import LineIngester
    from fslog.errors import InvalidInputError

    log = fslog.Log(str(root))
    log.create_topic("t", partitions=partitions)
    prod = log.producer("t", background=False)
    ing = LineIngester(prod, **opts)
    ing._bulk = ing._bulk and bulk
    error = None
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        try:
            ing.run(f.fileno())
        except InvalidInputError as e:
            error = str(e)
    prod.close()
    reader = log.reader("t")
    try:
        got = [(r.partition, r.offset, r.key, r.value, r.headers) for r in reader]
    finally:
        reader.close()
    return got, error, ing.skipped, ing.records, ing.lines


_json_lines = st.one_of(
    st.builds(lambda k, n: json.dumps({"k": k, "n": n}, ensure_ascii=False).encode(),
              st.sampled_from(["a", "b", "é", "u-1", "", "x" * 70]), st.integers()),
    st.builds(lambda n: json.dumps({"k": n}).encode(),
              st.integers(-10**30, 10**30) | st.floats(allow_nan=False, allow_infinity=False)),
    st.sampled_from([b'{"n": 1}', b"[1, 2]", b'"k"', b"null", b"", b"   ", b"{bad", b'{"k": NaN}',
                     b'{"k": 1e999}', b'{"k": "\\ud800"}', b'{"k": true}', b'{"k": null}',
                     b'{"k": {"a": 1}}', b' {"k": "sp"} ', b'{"k": "v"}\r', b"\xff\xfe"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_json_lines, min_size=1, max_size=40), st.booleans(), st.booleans())
def test_json_ingest_bulk_is_line_by_line(tmp_path_factory, lines, keyed, skip):
    # (keyless records go where the sticky partitioner is: one partition, to compare)
    opts = {"fmt": "json", "skip_invalid": skip, "partitions": 3 if keyed else 1}
    if keyed:
        opts["key_field"] = "k"
    data = b"\n".join(lines) + b"\n"
    bulk = _ingest(tmp_path_factory.mktemp("bulk"), data, True, **opts)
    line = _ingest(tmp_path_factory.mktemp("line"), data, False, **opts)
    assert bulk == line


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(st.tuples(st.sampled_from([b"k1", b"k2", b"", b"\xff", b"key-%d" % 7]),
                          st.sampled_from([b":", b"::", b""]),
                          st.binary(max_size=30).filter(lambda b: b"\n" not in b)),
                min_size=1, max_size=40), st.booleans(), st.booleans())
def test_key_separator_ingest_bulk_is_line_by_line(tmp_path_factory, recs, skip, as_json):
    data = b"".join(k + sep + v + b"\n" for k, sep, v in recs)
    opts = {"key_separator": b":", "skip_invalid": skip}
    if as_json:
        opts["fmt"] = "json"
    bulk = _ingest(tmp_path_factory.mktemp("bulk"), data, True, **opts)
    line = _ingest(tmp_path_factory.mktemp("line"), data, False, **opts)
    assert bulk == line


def test_key_field_cache_bounded_and_exact(tmp_path, monkeypatch):
    """--key-field keeps the UTF-8 of keys seen in a bounded cache: beyond it (emptied and
    refilled, or skipped for a chunk of mostly distinct keys) the records are the same as
    line by line, chunk after chunk, numbers as keys and misses included."""
    from fslog.clients import ingest
    monkeypatch.setattr(ingest, "KEY_CACHE", 8)
    lines = []
    for i in range(3000):
        k = "k%d" % (i % 5) if i < 1000 else "é%d" % (i % 6) if i < 2000 else "d%d" % i
        lines.append(json.dumps({"k": k, "i": i}, ensure_ascii=False).encode())
    lines[1500] = b'{"k": 15, "i": 1500}'  # a number: that chunk line by line
    data = b"\n".join(lines) + b"\n"
    opts = {"fmt": "json", "key_field": "k"}
    monkeypatch.setattr(ingest, "CHUNK", 1 << 12)  # many chunks
    real_init = ingest.LineIngester.__init__

    def small_chunks(self, *a, **kw):
        real_init(self, *a, **kw)
        self._chunk = 1 << 12
    monkeypatch.setattr(ingest.LineIngester, "__init__", small_chunks)
    bulk = _ingest(tmp_path / "bulk", data, True, **opts)
    line = _ingest(tmp_path / "line", data, False, **opts)
    assert bulk == line
    assert len(bulk[0]) == 3000
    assert {r[2] for r in bulk[0]} >= {b"k0", "\u00e91".encode(), b"d2999", b"15"}
