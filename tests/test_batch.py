"""RecordBatch v2 codec (fslog/batch.py): round trips, kafka-python as judge, corruption."""

from __future__ import annotations

import contextlib
import random
import signal
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from kafka.record.util import decode_varint as kafka_decode_varint
from kafka.record.util import encode_varint as kafka_encode_varint
from kafka_judge import kafka_records

from fslog.errors import CorruptRecordError
from fslog.records import batch as rb

# ------------------------------------------------------------------ strategies

# Timestamps as Kafka uses them (ms since the epoch, non-negative); wide enough that
# deltas need multi-byte varlongs, narrow enough that any delta fits a signed 64-bit.
timestamps = st.one_of(st.integers(0, 2**62), st.integers(1_600_000_000_000, 1_900_000_000_000))
opt_bytes = st.one_of(st.none(), st.binary(max_size=300))
header = st.tuples(st.text(max_size=20), opt_bytes)
record = st.tuples(opt_bytes, opt_bytes, timestamps, st.lists(header, max_size=4))
records_lists = st.lists(record, min_size=1, max_size=30)

fast = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail (instead of hanging the suite) if the body runs longer than ``seconds``."""
    def boom(signum, frame):
        raise TimeoutError(f"took longer than {seconds}s: a decoder loop that does not end?")
    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def decode_all(buf: bytes | bytearray) -> list[rb.Record]:
    """check_batch + decode_records over a buffer of back-to-back batches."""
    out = []
    pos = 0
    while pos < len(buf):
        h = rb.check_batch(buf, pos, len(buf))
        out.extend(rb.decode_records(buf, pos, h))
        pos += h.size
    return out


def fix_crc(buf: bytearray) -> bytearray:
    struct.pack_into(">I", buf, 17, rb.crc32c(bytes(buf[rb.CRC_START:])))
    return buf


# ------------------------------------------------------------------ varints

@given(st.integers(-2**63, 2**63 - 1))
@settings(max_examples=500)
def test_varint_round_trip(n):
    enc = rb.zigzag_varint(n)
    assert 1 <= len(enc) <= 10
    assert rb.read_varint(enc + b"\xff", 0) == (n, len(enc))
    # kafka-python agrees on the encoding
    buf = bytearray()
    kafka_encode_varint(n, buf.append)
    assert bytes(buf) == enc
    assert kafka_decode_varint(enc, 0) == (n, len(enc))


@pytest.mark.parametrize("n", [0, -1, 1, 63, -64, 64, 8191, 8192, 2**14 - 1, 2**14, 2**15,
                               2**31 - 1, -2**31, 2**63 - 1, -2**63])
def test_varint_edges(n):
    enc = rb.zigzag_varint(n)
    assert rb.read_varint(enc, 0) == (n, len(enc))
    assert enc == rb._zigzag_varint(n)  # the precomputed table agrees with the slow path


def test_varint_table_matches_slow_path():
    for i in range(rb._TABLE_SIZE):
        assert rb._tables()[0][i] == rb._zigzag_varint(i), i


def test_read_varint_too_long_is_valueerror():
    with pytest.raises(ValueError):
        rb.read_varint(b"\xff" * 11, 0)
    with pytest.raises(IndexError):
        rb.read_varint(b"\x80\x80", 0)


# ------------------------------------------------------------------ round trips

@given(records_lists, st.integers(0, 2**40))
@fast
def test_encode_records_round_trip(recs, base_offset):
    buf = rb.encode_records(recs, base_offset=base_offset)
    h = rb.check_batch(buf, 0, len(buf))
    assert h.size == len(buf)
    assert h.base_offset == base_offset
    assert h.record_count == len(recs)
    assert h.last_offset_delta == len(recs) - 1
    assert h.base_timestamp == recs[0][2]
    assert h.max_timestamp == max(r[2] for r in recs)
    got = rb.decode_records(buf, 0, h)
    expected = [rb.Record(base_offset + i, ts, k, v, tuple(hs))
                for i, (k, v, ts, hs) in enumerate(recs)]
    assert got == expected
    # the fast path agrees on the values
    assert [None if v is None else bytes(v) for v in rb.decode_values(bytes(buf), 0, h)] == \
        [v for _k, v, _ts, _hs in recs]
    # kafka-python, an independent parser, reads the same records
    assert kafka_records(bytes(buf)) == [tuple(r) for r in expected]


@given(records_lists, st.integers(0, 2**40), st.integers(0, 2**40))
@fast
def test_set_base_offset_keeps_crc(recs, first, second):
    buf = rb.encode_records(recs, base_offset=first)
    rb.set_base_offset(buf, second)
    h = rb.check_batch(buf, 0, len(buf))
    assert [r.offset for r in rb.decode_records(buf, 0, h)] == \
        list(range(second, second + len(recs)))
    assert [r[0] for r in kafka_records(bytes(buf))] == list(range(second, second + len(recs)))


@given(st.lists(st.tuples(opt_bytes, opt_bytes, timestamps, st.lists(header, max_size=2)),
                min_size=1, max_size=10).flatmap(
    lambda rs: st.tuples(st.just(rs), st.lists(st.integers(0, 1000), min_size=len(rs),
                                               max_size=len(rs), unique=True).map(sorted))))
@fast
def test_encode_records_with_offset_gaps(args):
    recs, deltas = args
    buf = rb.encode_records(recs, base_offset=100, offset_deltas=deltas)
    h = rb.check_batch(buf, 0, len(buf))
    assert h.last_offset_delta == deltas[-1]
    assert h.next_offset == 100 + deltas[-1] + 1
    got = rb.decode_records(buf, 0, h)
    assert [r.offset for r in got] == [100 + d for d in deltas]
    assert [r[0] for r in kafka_records(bytes(buf))] == [100 + d for d in deltas]


# lengths around the varint width boundaries (1 byte < 64, 2 bytes < 8192, 3 bytes < 2**20)
BOUNDARY_LENGTHS = [0, 1, 57, 58, 59, 62, 63, 64, 65, 8185, 8186, 8187, 8190, 8191, 8192, 8193,
                    16383, 16384, 16385, 20000, 70000]


@pytest.mark.parametrize("n", BOUNDARY_LENGTHS)
def test_encode_values_boundary_lengths(n):
    rnd = random.Random(n)
    values = [bytes(rnd.getrandbits(8) for _ in range(n)), b"", b"x" * n, b"\xff\xfe" * (n // 2)]
    buf = rb.encode_values(values, 1_700_000_000_123, base_offset=7)
    h = rb.check_batch(buf, 0, len(buf))
    assert rb.decode_values(bytes(buf), 0, h) == values
    got = rb.decode_records(buf, 0, h)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in got] == \
        [(7 + i, 1_700_000_000_123, None, v, ()) for i, v in enumerate(values)]
    assert kafka_records(bytes(buf)) == [tuple(r) for r in got]
    # the same records through the general encoder give the same bytes
    assert rb.encode_records([(None, v, 1_700_000_000_123, []) for v in values],
                             base_offset=7) == buf


@given(st.lists(st.one_of(st.binary(max_size=200), st.sampled_from([b""]),
                          st.integers(0, 20000).map(lambda n: b"v" * n)),
                min_size=1, max_size=40),
       timestamps, st.integers(0, 2**40))
@fast
def test_encode_values_round_trip(values, ts, base_offset):
    buf = rb.encode_values(values, ts, base_offset=base_offset)
    h = rb.check_batch(buf, 0, len(buf))
    assert h.record_count == len(values)
    assert h.base_timestamp == h.max_timestamp == ts
    assert rb.decode_values(bytes(buf), 0, h) == values
    assert [r.value for r in rb.decode_records(buf, 0, h)] == values
    kr = kafka_records(bytes(buf))
    assert [(o, t, k, v, hs) for o, t, k, v, hs in kr] == \
        [(base_offset + i, ts, None, v, ()) for i, v in enumerate(values)]


def test_encode_values_many_records_multibyte_offset_deltas():
    # > 2**14 records: offset deltas and lengths beyond the precomputed table
    values = [str(i).encode() for i in range(20000)]
    buf = rb.encode_values(values, 5)
    h = rb.check_batch(buf, 0, len(buf))
    assert rb.decode_values(bytes(buf), 0, h) == values
    assert [r.offset for r in rb.decode_records(buf, 0, h)] == list(range(20000))
    kr = kafka_records(bytes(buf))
    assert len(kr) == 20000 and kr[-1][0] == 19999 and kr[-1][3] == b"19999"


def test_empty_batches_refused():
    with pytest.raises(ValueError):
        rb.encode_values([], 0)
    with pytest.raises(ValueError):
        rb.encode_records([])


def test_header_layout_is_kafkas():
    buf = rb.encode_records([(b"k", b"v", 1000, [("h", b"x")]), (None, None, 999, [])],
                            base_offset=42)
    (base, length, epoch, magic, crc, attrs, lod, base_ts, max_ts, pid, pepoch, bseq,
     count) = struct.unpack_from(">qiibIhiqqqhii", buf, 0)
    assert (base, length + 12, epoch, magic, attrs, lod) == (42, len(buf), 0, 2, 0, 1)
    assert (base_ts, max_ts, pid, pepoch, bseq, count) == (1000, 1000, -1, -1, -1, 2)
    assert crc == rb.crc32c(bytes(buf[21:]))


def test_crc32c_known_vector():
    # RFC 3720 / iSCSI check value of CRC-32C
    assert rb.crc32c(b"123456789") == 0xE3069283
    assert rb.crc32c(b"56789", rb.crc32c(b"1234")) == 0xE3069283


# ------------------------------------------------------------------ corruption

SAMPLE = [
    (b"user-1", b'{"id": 1}', 1_700_000_000_000, [("trace", b"abc"), ("none", None)]),
    (None, b"", 1_700_000_000_007, []),
    (b"", None, 1_699_999_999_000, [("\u00fcber", b"\x00\xff")]),
    (b"k" * 70, b"v" * 130, 1_700_000_000_001, []),
]
# fields the CRC does not cover and that check_batch cannot judge either
UNCHECKED = set(range(0, 8)) | set(range(12, 16))  # baseOffset, partitionLeaderEpoch


def test_every_bit_flip_is_detected():
    good = rb.encode_records(SAMPLE, base_offset=1000)
    expected = rb.decode_records(good, 0, rb.check_batch(good, 0, len(good)))
    undetected = []
    for byte in range(len(good)):
        for bit in range(8):
            buf = bytearray(good)
            buf[byte] ^= 1 << bit
            try:
                h = rb.check_batch(buf, 0, len(buf))
                got = rb.decode_records(buf, 0, h)
            except (CorruptRecordError, rb.Incomplete):
                assert byte not in UNCHECKED
                continue
            undetected.append(byte)
            assert byte in UNCHECKED, f"flip of bit {bit} of byte {byte} went undetected"
            if byte < 8:  # a different base offset: same records, shifted offsets
                shift = h.base_offset - 1000
                assert got == [r._replace(offset=r.offset + shift) for r in expected]
            else:
                assert got == expected
    assert set(undetected) == UNCHECKED


def test_truncations_are_incomplete():
    good = rb.encode_records(SAMPLE)
    for cut in range(len(good)):
        with pytest.raises(rb.Incomplete):
            rb.check_batch(good[:cut], 0, cut)


def test_check_batch_error_names_place():
    good = rb.encode_records(SAMPLE, base_offset=77)
    buf = bytearray(good) + bytearray(good)
    rb.set_base_offset(buf, 78)  # first batch's offset; the second keeps 77
    buf[len(good) + 70] ^= 1
    h = rb.check_batch(buf, 0, len(buf), "x.log")
    with pytest.raises(CorruptRecordError) as ei:
        rb.check_batch(buf, h.size, len(buf), "x.log")
    e = ei.value
    assert (e.path, e.position, e.offset) == ("x.log", len(good), 77)
    assert "x.log" in str(e) and str(len(good)) in str(e)


def test_compressed_batch_that_does_not_decompress_is_corrupt():
    buf = rb.encode_records(SAMPLE, base_offset=9)
    struct.pack_into(">h", buf, 21, 1)  # claims gzip; the records are not
    fix_crc(buf)
    h = rb.check_batch(buf, 0, len(buf))
    with pytest.raises(CorruptRecordError, match="gzip data does not decompress") as ei:
        rb.decode_records(buf, 0, h, "x.log")
    assert (ei.value.path, ei.value.position, ei.value.offset) == ("x.log", 0, 9)
    with pytest.raises(CorruptRecordError, match="gzip"):
        rb.decode_values(bytes(buf), 0, h)


def test_unknown_codec_is_named():
    from fslog.errors import UnsupportedCompressionError
    buf = rb.encode_records(SAMPLE)
    struct.pack_into(">h", buf, 21, 6)
    fix_crc(buf)
    h = rb.check_batch(buf, 0, len(buf))
    with pytest.raises(UnsupportedCompressionError, match="unknown compression codec 6"):
        rb.decode_records(buf, 0, h)
    with pytest.raises(UnsupportedCompressionError, match="codec 6"):
        rb.decode_values(bytes(buf), 0, h)


@given(st.binary(max_size=400), st.integers(0, 8))
@settings(max_examples=400, deadline=None)
def test_random_bytes_never_crash(data, pos):
    assume(pos <= len(data))
    with time_limit(5):
        try:
            h = rb.check_batch(data, pos, len(data))
            rb.decode_records(data, pos, h)
            rb.decode_values(data, pos, h)
        except (CorruptRecordError, rb.Incomplete):
            pass


def crafted_batch(body: bytes, count: int, attributes: int, last_delta: int) -> bytearray:
    """A batch whose header is sane and whose CRC is right, around an arbitrary body."""
    buf = bytearray(struct.pack(">qiibIhiqqqhii", 0, rb.HEADER_SIZE - 12 + len(body), 0, 2, 0,
                                attributes, last_delta, 0, 0, -1, -1, -1, count))
    buf += body
    return fix_crc(buf)


@given(st.binary(max_size=300), st.integers(-2, 2**31 - 1) | st.integers(0, 5),
       st.integers(0, 0xFF), st.integers(-1, 2**31 - 1) | st.integers(0, 5), st.binary(max_size=20))
@settings(max_examples=400, deadline=None)
def test_crc_valid_garbage_never_crashes_or_hangs(body, count, attributes, last_delta, tail):
    """Bytes that pass the CRC but are not valid records: CorruptRecordError, quickly."""
    buf = bytes(crafted_batch(body, count, attributes & 0x3F, last_delta)) + tail
    with time_limit(5):
        try:
            h = rb.check_batch(buf, 0, len(buf))
        except (CorruptRecordError, rb.Incomplete):
            return
        for decode in (rb.decode_records, rb.decode_values):
            try:
                decode(buf, 0, h)
            except CorruptRecordError:
                pass


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_mutated_records_with_fixed_crc_never_crash_or_hang(data):
    """Valid batches with bytes of the records area changed and the CRC recomputed."""
    recs = data.draw(st.lists(record, min_size=1, max_size=5))
    buf = rb.encode_records(recs)
    n = data.draw(st.integers(1, 6))
    for _ in range(n):
        i = data.draw(st.integers(rb.HEADER_SIZE, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    fix_crc(buf)
    with time_limit(5):
        h = rb.check_batch(buf, 0, len(buf))
        for decode in (rb.decode_records, rb.decode_values):
            try:
                decode(bytes(buf), 0, h)
            except CorruptRecordError:
                pass


def test_negative_header_key_length_does_not_hang():
    # one record with a huge header count, then header key lengths -1 and -2: a decoder
    # that moves by a negative key length cycles over these two bytes without end.
    rec = b"\x00\x00\x00\x01\x01" + rb.zigzag_varint(2**40) + rb.zigzag_varint(-1) \
        + rb.zigzag_varint(-2)
    buf = crafted_batch(rb.zigzag_varint(len(rec)) + rec, 1, 0, 0)
    h = rb.check_batch(buf, 0, len(buf))
    with time_limit(5):
        with pytest.raises(CorruptRecordError):
            rb.decode_records(bytes(buf), 0, h)


def test_negative_record_length_does_not_hang_values_decoder():
    # record length -3 (a 3-byte varint) with a null value: a decoder that jumps to
    # "the record's end" goes backwards, and with 2**31-1 records never finishes.
    neg = bytes([0x85, 0x80, 0x00])  # zigzag(-3) in a 3-byte, non-minimal form
    assert rb.read_varint(neg, 0) == (-3, 3)
    rec = neg + b"\x00\x00\x00\x01\x01\x00"
    buf = crafted_batch(rec * 3, 2**31 - 1, 0, 0)
    h = rb.check_batch(buf, 0, len(buf))
    with time_limit(5):
        with pytest.raises(CorruptRecordError):
            rb.decode_values(bytes(buf), 0, h)
        with pytest.raises(CorruptRecordError):
            rb.decode_records(bytes(buf), 0, h)


# ------------------------------------------------------------------ the plain-batch fast path

def _plain_judge(buf, h, got):
    """decode_plain_values gave ``got``: None, or exactly what the full decoder says."""
    if got is None:
        return
    recs = rb.decode_records(buf, 0, h)
    assert [r.value for r in recs] == got
    assert all(r.key is None and r.headers == () and r.timestamp == h.base_timestamp
               and r.offset == h.base_offset + i for i, r in enumerate(recs))


# values that look like record framing: zeros, ones, varint-ish bytes
framing_like = st.binary(max_size=40) | st.lists(
    st.sampled_from([b"\x00", b"\x01", b"\x02", b"\x80", b"\x81\x01", b"\x00\x00", b"x"]),
    max_size=12).map(b"".join)


@given(st.lists(framing_like, min_size=1, max_size=120), st.integers(0, 2**40))
@fast
def test_plain_values_never_disagree_with_the_full_decoder(values, base_offset):
    buf = bytes(rb.encode_values(values, 1_700_000_000_000, base_offset))
    h = rb.check_batch(buf, 0, len(buf))
    _plain_judge(buf, h, rb.decode_plain_values(buf, 0, h))


@pytest.mark.parametrize("n,sizes", [(1, [0]), (32, [5]), (64, [63, 64]), (65, [100]),
                                     (300, [0, 1, 63, 64, 65, 200, 8191]), (9000, [10, 70])])
def test_plain_values_take_text_batches(n, sizes):
    values = [b"v" * sizes[i % len(sizes)] for i in range(n)]
    buf = bytes(rb.encode_values(values, 5, 7))
    h = rb.check_batch(buf, 0, len(buf))
    assert rb.decode_plain_values(buf, 0, h) == values


def test_plain_values_refuse_other_shapes():
    for recs in ([(b"k", b"v", 5, [])] * 40,          # a key
                 [(None, b"v", 5, [("h", b"x")])] * 40,  # headers
                 [(None, b"v", 5 + i, []) for i in range(40)],  # timestamp deltas
                 [(None, None, 5, [])] * 40):          # null values
        buf = bytes(rb.encode_records(recs))
        h = rb.check_batch(buf, 0, len(buf))
        assert rb.decode_plain_values(buf, 0, h) is None
    buf = bytes(rb.encode_records([(None, b"v", 5, [])] * 40, offset_deltas=list(range(0, 80, 2))))
    assert rb.decode_plain_values(buf, 0, rb.check_batch(buf, 0, len(buf))) is None


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_plain_values_of_mutated_batches_are_right_or_none(data):
    """Plain batches with bytes changed and the CRC fixed: the fast path either declines
    or gives exactly the records the full decoder reads (which then must not fail)."""
    values = data.draw(st.lists(st.binary(min_size=0, max_size=8) | st.just(b"abc"),
                                min_size=1, max_size=50))
    buf = rb.encode_values(values, 99, 3)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(rb.HEADER_SIZE, len(buf) - 1))
        buf[i] = data.draw(st.sampled_from([0, 1, 2, 0x7F, 0x80, data.draw(st.integers(0, 255))]))
    fix_crc(buf)
    buf = bytes(buf)
    h = rb.check_batch(buf, 0, len(buf))
    with time_limit(5):
        _plain_judge(buf, h, rb.decode_plain_values(buf, 0, h))


def test_crc32c_range_matches_one_slice():
    data = bytes(random.Random(4).randbytes(300_000))
    for start, end in ((21, len(data)), (0, 0), (5, 70_000), (65_536, 65_537)):
        assert rb.crc32c_range(data, start, end) == rb.crc32c(data[start:end])


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 8191, 8192, 1 << 20, 2**31 - 1, -1, -65])
def test_varint_size(n):
    assert rb.varint_size(n) == len(rb._zigzag_varint(n))


def test_value_batch_size_is_exact():
    for m in list(range(0, 300)) + [8000, 8191, 8192, 8200, 1 << 20, (1 << 20) - 70]:
        assert rb.value_batch_size(m) == rb.single_record_batch_size(b"x" * m), m
