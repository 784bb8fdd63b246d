"""Kafka RecordBatch v2 (magic 2): encode and decode, varints, CRC-32C.

Byte layout of one batch (all integers big-endian), exactly Kafka's::

    offset  size  field
    0       8     baseOffset            offset of the first record
    8       4     batchLength           bytes after this field (total size - 12)
    12      4     partitionLeaderEpoch  the appending leader's epoch (0 until a
                                        root first takes over: storage/leader_epoch.py)
    16      1     magic                 2
    17      4     crc                   CRC-32C (Castagnoli) of bytes 21..end
    21      2     attributes            bits 0-2 compression (0 none, 1 gzip, 2 snappy,
                                        3 lz4, 4 zstd: see compression.py),
                                        bit 3 timestamp type, 4 transactional, 5 control
    23      4     lastOffsetDelta       offset of the last record - baseOffset
    27      8     baseTimestamp         ms since the epoch (first record)
    35      8     maxTimestamp          greatest record timestamp
    43      8     producerId            -1 (no idempotent producer)
    51      2     producerEpoch         -1
    53      4     baseSequence          -1
    57      4     recordCount
    61      ...   records

Each record is a zigzag-varint length followed by that many bytes::

    attributes      int8 (0)
    timestampDelta  varlong   record timestamp - baseTimestamp
    offsetDelta     varint    record offset - baseOffset
    keyLength       varint    -1 for a null key
    key             bytes
    valueLength     varint    -1 for a null value (a tombstone)
    value           bytes
    headerCount     varint
    headers         each: keyLength varint, key (UTF-8), valueLength varint (-1 = null), value

A compressed batch (attributes bits 0-2 name the codec) has the same header; the records
above, one after another, are compressed as one stream (see ``compression.py``), which is
what batchLength and the CRC cover, while recordCount and lastOffsetDelta count the
records inside.

The CRC does not cover baseOffset, so a batch is encoded once, outside any lock, and
its base offset is patched in (``set_base_offset``) when it is appended.

Pure functions; safe to call from any thread.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from itertools import repeat
from operator import add, getitem, itemgetter, sub
from typing import Any, Iterable, NamedTuple, Sequence

import google_crc32c

from ..errors import CorruptRecordError
from . import compression


def crc32c(data, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data`` (bytes), continuing from ``crc``. C-backed."""
    if crc:
        return google_crc32c.extend(crc, data)
    return google_crc32c.value(data)


_CRC_CHUNK = 64 << 10


def crc32c_range(buf, start: int, end: int) -> int:
    """CRC-32C of ``buf[start:end]`` (bytes or an mmap), over 64 KiB slices: one slice of a
    whole batch (hundreds of KiB) is a fresh allocation whose pages fault in, which costs
    more than the CRC itself."""
    stop = min(end, start + _CRC_CHUNK)
    crc = google_crc32c.value(bytes(buf[start:stop]))
    while stop < end:
        start, stop = stop, min(end, stop + _CRC_CHUNK)
        crc = google_crc32c.extend(crc, bytes(buf[start:stop]))
    return crc

MAGIC = 2
HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: bytes not counted in batchLength
CRC_START = 21
_HEADER = struct.Struct(">qiibIhiqqqhii")
_AFTER_CRC = struct.Struct(">hiqqqhii")  # attributes .. recordCount
_OFFSET_AND_LENGTH = struct.Struct(">qi")
_OFFSET = struct.Struct(">q")
_CRC = struct.Struct(">I")
COMPRESSION_MASK = 0x07
CONTROL_FLAG = 0x20
NO_TIMESTAMP = -1


class BatchHeader(NamedTuple):
    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Total bytes of the batch on disk."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1


class Record(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


# ---------------------------------------------------------------- varints

def uvarint(n: int) -> bytes:
    """``n`` >= 0 as an unsigned varint, 7 bits per byte, least significant first (the
    protocol's flexible versions write array, string and bytes lengths + 1 so, 0 for
    null)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag_varint(n: int) -> bytes:
    return uvarint((n << 1) ^ (n >> 63))


# Precomputed encodings of small non-negative numbers: the hot path of encoding is
# a table lookup per field.
_TABLE_SIZE = 1 << 14
_TABLES: tuple | None = None


def _tables() -> tuple[list[bytes], list[bytes], list[int]]:
    """(zigzag varint of i, record middle for offset delta i, len of the varint), for
    i < _TABLE_SIZE: built on first use, so that readers never pay for them."""
    global _TABLES
    if _TABLES is None:
        zz = ([bytes((2 * i,)) for i in range(64)]
              + [bytes(((2 * i) & 0x7F | 0x80, (2 * i) >> 7)) for i in range(64, 8192)]
              + [bytes(((2 * i) & 0x7F | 0x80, ((2 * i) >> 7) & 0x7F | 0x80, (2 * i) >> 14))
                 for i in range(8192, _TABLE_SIZE)])
        # between a record's length and its value length: attributes 0, timestampDelta 0,
        # offsetDelta i, keyLength -1 (null key)
        mid = [b"\x00\x00" + z + b"\x01" for z in zz]
        _TABLES = (zz, mid, [len(z) for z in zz])
    return _TABLES


_LENGTHS: list | None = None


def _length_tables() -> list[list[bytes]]:
    """lengths[c - 1][m]: the length varint of a keyless, headerless record with an m-byte
    value, timestamp delta 0 and an offsetDelta of c bytes: zz(4 + c + len(zz(m)) + m)
    (zz(m) takes 1 byte below 64, 2 below 8192, then 3). Built on first use."""
    global _LENGTHS
    if _LENGTHS is None:
        zz = _tables()[0]
        _LENGTHS = [zz[5 + c:69 + c] + zz[70 + c:8198 + c] + zz[8199 + c:] for c in (1, 2, 3)]
    return _LENGTHS


def zigzag_varint(n: int) -> bytes:
    """Kafka's varint/varlong: zigzag, then 7 bits per byte, least significant first."""
    if _TABLES is not None and 0 <= n < _TABLE_SIZE:  # (a few records never build them)
        return _TABLES[0][n]
    return _zigzag_varint(n)


def varint_size(n: int) -> int:
    """Bytes of ``zigzag_varint(n)``."""
    z = (n << 1) ^ (n >> 63)
    size = 1
    while z >= 0x80:
        z >>= 7
        size += 1
    return size


def read_varint(buf, pos: int) -> tuple[int, int]:
    """Decode a zigzag varint at ``pos``; return (value, next position).

    Raises IndexError past the end of ``buf`` and ValueError for a varint longer than
    10 bytes (callers turn both into CorruptRecordError).
    """
    b = buf[pos]
    pos += 1
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos
    z = b & 0x7F
    shift = 7
    while True:
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


# ---------------------------------------------------------------- encoding

def _finish(body: bytes | bytearray, count: int, base_timestamp: int, max_timestamp: int,
            base_offset: int) -> bytearray:
    after_crc = _AFTER_CRC.pack(0, count - 1, base_timestamp, max_timestamp, -1, -1, -1, count)
    crc = crc32c(bytes(body), crc32c(after_crc))
    out = bytearray(_HEADER.pack(base_offset, HEADER_SIZE - LOG_OVERHEAD + len(body), 0, MAGIC,
                                 crc, 0, count - 1, base_timestamp, max_timestamp, -1, -1, -1,
                                 count))
    out += body
    return out


def encode_values(values: Sequence[bytes], timestamp: int, base_offset: int = 0) -> bytearray:
    """One batch of keyless, headerless records that share one timestamp.

    The fast path of ``fslog produce``: each record is ``length | 0 | 0 | offsetDelta |
    -1 | valueLength | value | 0`` (no headers); the prefix comes from table lookups in
    one comprehension, and the batch from a single join.
    """
    n = len(values)
    if n == 0:
        raise ValueError("a batch needs at least one record")
    lens = list(map(len, values))
    if (n >= 16 or _TABLES is not None) and n < _TABLE_SIZE and max(lens) < _TABLE_SIZE - 16:
        zz, mid, _ln = _tables()
        lengths = _length_tables()
        # five items a record, each list made by a table lookup in C: length, the middle
        # (attributes, timestampDelta, offsetDelta, keyLength), valueLength, value, 0
        parts = [b"\x00"] * (5 * n)  # every fifth item: headerCount 0
        parts[0:320:5] = map(lengths[0].__getitem__, lens[:64])
        parts[320:40960:5] = map(lengths[1].__getitem__, lens[64:8192])
        parts[40960::5] = map(lengths[2].__getitem__, lens[8192:])
        parts[1::5] = mid[:n]
        parts[2::5] = map(zz.__getitem__, lens)
        parts[3::5] = values
        return _finish(b"".join(parts), n, timestamp, timestamp, base_offset)
    parts = []
    append = parts.append
    for i, v in enumerate(values):
        m = len(v)
        vl = zigzag_varint(m)
        od = zigzag_varint(i)
        append(zigzag_varint(4 + len(od) + len(vl) + m) + b"\x00\x00" + od + b"\x01" + vl)
        append(v)
        append(b"\x00")
    return _finish(b"".join(parts), n, timestamp, timestamp, base_offset)


def _bytes_field(b: bytes | None) -> bytes:
    if b is None:
        return b"\x01"  # zigzag(-1)
    return zigzag_varint(len(b)) + bytes(b)


def encode_record(offset_delta: int, timestamp_delta: int, key: bytes | None,
                  value: bytes | None,
                  headers: Iterable[tuple[str, bytes | None]] = ()) -> bytes:
    """One record, with its length prefix."""
    hs = list(headers)
    body = [b"\x00", zigzag_varint(timestamp_delta), zigzag_varint(offset_delta),
            _bytes_field(key), _bytes_field(value), zigzag_varint(len(hs))]
    for hk, hv in hs:
        body.append(_bytes_field(hk.encode("utf-8")))
        body.append(_bytes_field(hv))
    raw = b"".join(body)
    return zigzag_varint(len(raw)) + raw


def encode_records(records: Sequence[tuple[bytes | None, bytes | None, int,
                                           Sequence[tuple[str, bytes | None]]]],
                   base_offset: int = 0, offset_deltas: Sequence[int] | None = None) -> bytearray:
    """One batch of (key, value, timestamp, headers) records: the general path.

    ``offset_deltas`` keeps gaps (used by compaction, which preserves offsets);
    by default records get deltas 0, 1, 2, ...
    """
    if not records:
        raise ValueError("a batch needs at least one record")
    if len(records) >= 16:
        _tables()  # varints by table lookup from here on
    base_ts = records[0][2]
    max_ts = base_ts
    parts = []
    for i, (key, value, ts, headers) in enumerate(records):
        if ts > max_ts:
            max_ts = ts
        delta = offset_deltas[i] if offset_deltas is not None else i
        parts.append(encode_record(delta, ts - base_ts, key, value, headers))
    out = _finish(b"".join(parts), len(records), base_ts, max_ts, base_offset)
    if offset_deltas is not None:
        # lastOffsetDelta is the last record's delta, not count - 1; recompute the CRC.
        struct.pack_into(">i", out, 23, offset_deltas[-1])
        struct.pack_into(">I", out, 17, crc32c(bytes(out[CRC_START:])))
    return out


def encode_compacted(records: Sequence[Record], base_offset: int, last_offset: int,
                     timestamp: int = NO_TIMESTAMP) -> bytearray:
    """A batch covering offsets ``base_offset..last_offset`` that holds only ``records``
    (compaction's output: offsets keep their gaps, and the batch's range — base offset
    and lastOffsetDelta — may extend past its first and last record, as Kafka's cleaner
    writes them). With no records it is an empty batch that only carries the range
    forward, timestamped ``timestamp``; readers step over it.
    """
    parts = []
    if records:
        base_ts = records[0].timestamp
        max_ts = max(r.timestamp for r in records)
        for r in records:
            parts.append(encode_record(r.offset - base_offset, r.timestamp - base_ts, r.key,
                                       r.value, r.headers))
    else:
        base_ts = max_ts = timestamp
    body = b"".join(parts)
    count = len(records)
    last_delta = last_offset - base_offset
    if not 0 <= last_delta < 1 << 31:
        raise ValueError(f"offset range {base_offset}..{last_offset} does not fit one batch")
    after_crc = _AFTER_CRC.pack(0, last_delta, base_ts, max_ts, -1, -1, -1, count)
    crc = crc32c(body, crc32c(after_crc))
    out = bytearray(_HEADER.pack(base_offset, HEADER_SIZE - LOG_OVERHEAD + len(body), 0, MAGIC,
                                 crc, 0, last_delta, base_ts, max_ts, -1, -1, -1, count))
    out += body
    return out


def encode_keyed_compacted(keys: Sequence[bytes], values: Sequence[bytes],
                           deltas: Sequence[int], timestamp: int, base_offset: int,
                           last_offset: int) -> bytearray | None:
    """``encode_compacted`` for records of the keyed shape (a key and a value each, no
    headers, all at ``timestamp``) at the offset deltas ``deltas`` (increasing, from
    ``base_offset``): what compaction keeps of a keyed batch that loses some records. By
    table lookups, as ``encode_keyed``: no Python loop per record; the same bytes as
    ``encode_compacted``. None if a length or delta is outside the tables (then use that)."""
    n = len(keys)
    last_delta = last_offset - base_offset
    if not n or n != len(values) or n != len(deltas) or not 0 <= last_delta < 1 << 31:
        return None
    _framing, zz, sized, _unzz, _vskip, _fixed, mid2 = _keyed_tables()
    ln = _KEYED_LENGTHS[0]  # type: ignore[index]
    try:
        klens = list(map(len, keys))
        vlens = list(map(len, values))
        # attributes, timestampDelta, headerCount (3), offsetDelta, key and value with
        # their length varints
        sizes = list(map(add, map(add, _lookup(sized, klens), _lookup(sized, vlens)),
                         _lookup(ln, list(deltas))))
        parts = [b"\x00"] * (7 * n)  # every seventh item: headerCount 0
        parts[0::7] = _lookup(zz, [s + 3 for s in sizes])
        parts[1::7] = _lookup(mid2, list(deltas))
        parts[2::7] = _lookup(zz, klens)
        parts[4::7] = _lookup(zz, vlens)
    except IndexError:
        return None
    parts[3::7] = keys
    parts[5::7] = values
    body = b"".join(parts)
    after_crc = _AFTER_CRC.pack(0, last_delta, timestamp, timestamp, -1, -1, -1, n)
    crc = crc32c(body, crc32c(after_crc))
    out = bytearray(_HEADER.pack(base_offset, HEADER_SIZE - LOG_OVERHEAD + len(body), 0, MAGIC,
                                 crc, 0, last_delta, timestamp, timestamp, -1, -1, -1, n))
    out += body
    return out


def extend_range(batch: bytes, last_offset: int) -> bytearray:
    """A copy of ``batch`` whose offset range ends at ``last_offset`` (at or after its own
    last offset): lastOffsetDelta changed and the CRC recomputed, records untouched, so
    compaction carries a batch that stays whole over the offsets removed after it."""
    h = read_header(batch, 0)
    out = bytearray(batch)
    struct.pack_into(">i", out, 23, last_offset - h.base_offset)
    struct.pack_into(">I", out, 17, crc32c_range(out, CRC_START, h.size))
    return out


def single_record_batch_size(value: bytes | None, key: bytes | None = None,
                             headers: Iterable[tuple[str, bytes | None]] = ()) -> int:
    """Exact size of a batch holding just this record: what max.message.bytes limits."""
    return HEADER_SIZE + len(encode_record(0, 0, key, value, headers))


def value_batch_size(value_size: int) -> int:
    """``single_record_batch_size`` of a keyless, headerless record with a value of
    ``value_size`` bytes, computed without building it."""
    length = 5 + varint_size(value_size) + value_size  # see encode_record
    return HEADER_SIZE + varint_size(length) + length


def set_base_offset(batch: bytearray, base_offset: int) -> None:
    """Patch the base offset of an encoded batch (not covered by the CRC)."""
    _OFFSET.pack_into(batch, 0, base_offset)


_EPOCH = struct.Struct(">i")
LEADER_EPOCH_AT = 12


def set_leader_epoch(batch: bytearray, epoch: int) -> None:
    """Patch the partitionLeaderEpoch of an encoded batch (not covered by the CRC)."""
    _EPOCH.pack_into(batch, LEADER_EPOCH_AT, epoch)


# ---------------------------------------------------------------- decoding

def read_header(buf, pos: int) -> BatchHeader:
    return BatchHeader._make(_HEADER.unpack_from(buf, pos))


def peek_offset_and_length(buf, pos: int) -> tuple[int, int]:
    return _OFFSET_AND_LENGTH.unpack_from(buf, pos)


def crc_ok(buf, pos: int, header: BatchHeader) -> bool:
    return crc32c_range(buf, pos + CRC_START, pos + header.size) == header.crc


class Incomplete(Exception):
    """The bytes at a position are a batch not yet completely written (or torn)."""


def check_batch(buf, pos: int, end: int, path: str | None = None) -> BatchHeader:
    """Validate the batch at ``pos`` (header sanity, bounds, CRC) and return its header.

    Raises ``Incomplete`` when the batch runs past ``end`` (a tail still being written,
    or torn by a crash) and ``CorruptRecordError`` when it is complete but invalid.
    """
    if end - pos < HEADER_SIZE:
        raise Incomplete()
    h = read_header(buf, pos)
    if h.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise CorruptRecordError(
            f"{path}: position {pos}: batch length {h.batch_length} is too small",
            path, pos, h.base_offset)
    if h.magic != MAGIC:
        raise CorruptRecordError(
            f"{path}: position {pos}: magic byte is {h.magic}, expected 2 (not a RecordBatch v2)",
            path, pos, h.base_offset)
    if pos + h.size > end:
        raise Incomplete()
    if not crc_ok(buf, pos, h):
        raise CorruptRecordError(
            f"{path}: position {pos}: CRC mismatch in the batch at offset {h.base_offset}",
            path, pos, h.base_offset)
    if h.record_count < 0 or h.last_offset_delta < 0:
        raise CorruptRecordError(
            f"{path}: position {pos}: batch at offset {h.base_offset} has a negative record count",
            path, pos, h.base_offset)
    return h


def find_valid_batch(buf, start: int = 0, min_offset: int | None = None) -> int:
    """Position of the first complete, CRC-valid batch at or after ``start`` in ``buf``
    (bytes) whose base offset is at least ``min_offset``, or -1.

    Used to tell damage (the log goes on after it) from a torn tail (it does not). The
    offset bound keeps a record value that happens to hold a batch (in a torn tail, say)
    from passing for the continuation of the log.
    """
    end = len(buf)
    i = buf.find(b"\x02", start + 16)
    while i >= 0:
        pos = i - 16
        if end - pos >= HEADER_SIZE:
            try:
                h = check_batch(buf, pos, end)
                if min_offset is None or h.base_offset >= min_offset:
                    return pos
            except (Incomplete, CorruptRecordError):
                pass
        i = buf.find(b"\x02", i + 1)
    return -1


def tail_is_torn(buf: bytes, expect: int | None = None) -> bool:
    """Are ``buf`` — the bytes from a bad batch to the end of the file — a torn tail?

    A torn tail is what a crash leaves: a write cut short (kill -9: a prefix of valid
    bytes), or zeros or stale blocks (power loss). Anything else is damage: the log goes
    on after it. ``expect`` is the offset the batch should start with, if known.

    - A plausible header (magic 2, sane length, the expected base offset) that runs past
      the end: torn if the bytes present are a prefix of its records (walked by their
      lengths, so a record value that happens to hold a batch is not mistaken for the
      log going on); damage if its records end before the length it claims.
      A compressed one is torn unless a valid batch continuing the log follows.
    - A plausible, complete batch with a bad CRC: torn unless a valid batch continuing
      the log (a greater base offset) follows it. The search starts right after the
      header's first byte, not at the end the header claims: a damaged batchLength must
      not hide the batches after it.
    - A complete batch with a valid CRC (whatever its base offset, which the CRC does
      not cover) is never torn: its records were written whole.
    - A header that is not one: torn unless a valid batch continuing the log follows.
    """
    if len(buf) < HEADER_SIZE:
        return True
    h = read_header(buf, 0)
    sane = h.magic == MAGIC and h.batch_length >= HEADER_SIZE - LOG_OVERHEAD
    if sane and h.size <= len(buf) and h.record_count >= 0 and crc_ok(buf, 0, h):
        return False
    plausible = sane and h.record_count > 0 and (expect is None or h.base_offset == expect)
    if plausible and h.size > len(buf):
        if h.attributes & COMPRESSION_MASK:  # compressed records cannot be walked
            return find_valid_batch(buf, HEADER_SIZE, h.base_offset + 1) < 0
        return _records_are_a_prefix(buf, h)
    least = h.base_offset + 1 if plausible else (None if expect is None else expect + 1)
    return find_valid_batch(buf, 1, least) < 0


def _records_are_a_prefix(buf: bytes, h: BatchHeader) -> bool:
    p = HEADER_SIZE
    end = len(buf)
    for _ in range(h.record_count):
        if p >= end:
            return True  # cut at a record boundary
        try:
            length, q = read_varint(buf, p)
        except IndexError:
            return True  # cut inside a length
        except ValueError:
            return False
        if length <= 0:
            return False
        p = q + length
        if p > end:
            return True  # cut inside a record
    return False  # every record is here, yet the header claims more bytes: damage


def decompress_records(buf, pos: int, h: BatchHeader, path: str | None = None,
                       limit: int | None = None) -> bytes:
    """The records section of the (already checked) compressed batch at ``pos``,
    decompressed (see ``compression``); CorruptRecordError naming the place if the codec
    is unknown, the bytes do not decompress, or they inflate past ``limit`` bytes."""
    global _INFLATED
    last = _INFLATED
    if last[0] is buf and last[1] == pos:
        return last[2]
    try:
        raw = compression.decompress(h.attributes & COMPRESSION_MASK,
                                     buf[pos + HEADER_SIZE:pos + h.size], limit)
    except CorruptRecordError as e:
        raise type(e)(f"{path + ': ' if path else ''}position {pos}: batch at offset "
                      f"{h.base_offset}: {e}", path, pos, h.base_offset) from None
    if type(buf) is bytes:  # immutable, and kept alive by the cache: identity is safe
        _INFLATED = (buf, pos, raw)
    return raw


# The last batch decompressed (from a bytes buffer): a reader that tries
# ``decode_plain_values`` first and then the general decoder decompresses once.
_INFLATED: tuple = (None, -1, b"")


def compress_batch(batch: bytearray, codec: int) -> bytearray:
    """``batch`` (one uncompressed batch, as the encoders return it) with its records
    compressed by ``codec`` (``compression.GZIP`` ...): attributes bits 0-2 set,
    batchLength over the compressed bytes, the CRC computed again; recordCount,
    lastOffsetDelta and the timestamps stay. A batch that compression does not make
    smaller comes back as it is, uncompressed (as librdkafka does), so compressing never
    takes a batch past max.message.bytes."""
    records = memoryview(batch)[HEADER_SIZE:]
    body = compression.compress(codec, records)
    if len(body) >= len(records):
        return batch
    out = bytearray(batch[:HEADER_SIZE])
    out += body
    struct.pack_into(">i", out, 8, HEADER_SIZE - LOG_OVERHEAD + len(body))
    struct.pack_into(">h", out, CRC_START,
                     (read_header(batch, 0).attributes & ~COMPRESSION_MASK) | codec)
    struct.pack_into(">I", out, 17, crc32c_range(out, CRC_START, len(out)))
    return out


def decode_records(buf, pos: int, h: BatchHeader, path: str | None = None,
                   limit: int | None = None) -> list[Record]:
    """All records of the (already checked) batch at ``pos``, compressed or not (its
    records inflating to at most ``limit`` bytes, when given)."""
    base_offset = h.base_offset
    base_ts = h.base_timestamp
    if h.attributes & COMPRESSION_MASK:  # the same parser, over the decompressed records
        buf = decompress_records(buf, pos, h, path, limit)
        p, end = 0, len(buf)
    else:
        p = pos + HEADER_SIZE
        end = pos + h.size
    out = []
    try:
        for _ in range(h.record_count):
            length, p = read_varint(buf, p)
            rec_end = p + length
            p += 1  # attributes
            ts_delta, p = read_varint(buf, p)
            off_delta, p = read_varint(buf, p)
            klen, p = read_varint(buf, p)
            if klen < 0:
                key = None
            else:
                key = bytes(buf[p:p + klen])
                p += klen
            vlen, p = read_varint(buf, p)
            if vlen < 0:
                value = None
            else:
                value = bytes(buf[p:p + vlen])
                p += vlen
            nh, p = read_varint(buf, p)
            headers: tuple[tuple[str, bytes | None], ...] = ()
            if nh:
                if nh < 0 or nh > end - p:  # each header takes at least 2 bytes
                    raise ValueError(f"header count {nh} does not fit the batch")
                hl = []
                for _h in range(nh):
                    hk, p = read_varint(buf, p)
                    if hk < 0:
                        raise ValueError("negative header key length")
                    hkey = bytes(buf[p:p + hk]).decode("utf-8", "replace")
                    p += hk
                    hv, p = read_varint(buf, p)
                    if hv < 0:
                        hval = None
                    else:
                        hval = bytes(buf[p:p + hv])
                        p += hv
                    hl.append((hkey, hval))
                headers = tuple(hl)
            if p != rec_end or p > end:
                raise ValueError("record length does not match its fields")
            out.append(Record(base_offset + off_delta, base_ts + ts_delta, key, value, headers))
    except (IndexError, ValueError) as e:
        raise CorruptRecordError(
            f"{path}: position {pos}: malformed record in the batch at offset {base_offset} ({e})",
            path, pos, base_offset) from None
    if p != end:
        raise CorruptRecordError(
            f"{path}: position {pos}: batch at offset {base_offset} has {end - p} bytes after "
            f"its {h.record_count} records", path, pos, base_offset)
    return out


def decode_values(buf, pos: int, h: BatchHeader) -> list:
    """Only the values of the (already checked) batch at ``pos``: the read loop's fast path.

    ``buf`` should be ``bytes`` (indexing is fastest there); values come back as slices
    of it, None for a null value. Fields are bounds-checked against their record; header
    contents are skipped (the CRC has already vouched for the bytes).
    """
    out: list = []
    append = out.append
    if h.attributes & COMPRESSION_MASK:  # the same loop, over the decompressed records
        buf = decompress_records(buf, pos, h)
        p, end = 0, len(buf)
    else:
        p = pos + HEADER_SIZE
        end = pos + h.size
    rv = read_varint
    try:
        for _ in range(h.record_count):
            b = buf[p]
            if b < 0x80:
                if b & 1:
                    raise ValueError("negative record length")
                rec_end = p + 1 + (b >> 1)
                p += 2
            else:
                c = buf[p + 1]
                if c < 0x80:
                    rec_end = p + 2 + ((b & 0x7F | c << 7) >> 1)
                    p += 3
                else:
                    length, p = rv(buf, p)
                    if length <= 0:  # would send p backwards: no end to the loop
                        raise ValueError(f"record length {length}")
                    rec_end = p + length
                    p += 1
            # timestamp delta, offset delta: skipped, not decoded
            if buf[p] < 0x80:
                p += 1
            elif buf[p + 1] < 0x80:
                p += 2
            else:
                _, p = rv(buf, p)
            if buf[p] < 0x80:
                p += 1
            elif buf[p + 1] < 0x80:
                p += 2
            else:
                _, p = rv(buf, p)
            b = buf[p]  # key length
            if b == 1:
                p += 1
            elif b < 0x80:
                if b & 1:
                    raise ValueError("negative key length")
                p += 1 + (b >> 1)
            else:
                k, p = rv(buf, p)
                if k < -1:
                    raise ValueError("negative key length")
                p += max(k, 0)
            b = buf[p]  # value length
            if b < 0x80:
                if b & 1:
                    if b != 1:
                        raise ValueError("negative value length")
                    append(None)
                    p = rec_end
                    continue
                p += 1
                q = p + (b >> 1)
            else:
                c = buf[p + 1]
                if c < 0x80:
                    p += 2
                    q = p + ((b & 0x7F | c << 7) >> 1)
                else:
                    v, p = rv(buf, p)
                    q = p + v
            if q > rec_end or rec_end > end:
                raise ValueError("value runs past its record")
            append(buf[p:q])
            p = rec_end
    except (IndexError, ValueError) as e:
        raise CorruptRecordError(
            f"position {pos}: malformed record in the batch at offset {h.base_offset} ({e})",
            None, pos, h.base_offset) from None
    if p != end:
        raise CorruptRecordError(
            f"position {pos}: batch at offset {h.base_offset} has {end - p} bytes after its "
            f"{h.record_count} records", None, pos, h.base_offset)
    return out


# ---------------------------------------------------------------- the plain-batch fast path

def _first_key_byte(buf, pos: int, end: int) -> int:
    """The first byte of the key length of the first record of the (uncompressed) batch
    at ``pos`` if the record starts with attributes 0, timestamp delta 0 and offset delta
    0 (the shape the fast paths decode), else -1: tells a plain batch (1: a null key) from
    a keyed one without a split of the whole batch."""
    p = pos + HEADER_SIZE
    try:
        while buf[p] >= 0x80 and p < pos + HEADER_SIZE + 3:  # the record's length
            p += 1
        if buf[p + 1] or buf[p + 2] or buf[p + 3] or p + 4 >= end:
            return -1
        return buf[p + 4]
    except IndexError:
        return -1


PLAIN_MIN_RECORDS = 32  # smaller batches take the loops above (and never build the tables)
_PLAIN: tuple | None = None


def _plain_tables() -> tuple:
    """(framing regex, zigzag table, middles table, record-length tables) for
    ``decode_plain_values``; built on first use."""
    global _PLAIN
    if _PLAIN is None:
        import re
        zz, mid, _ln = _tables()
        v = rb"[\x80-\xff]{0,2}[\x00-\x7f]"  # a varint of 1 to 3 bytes
        # headerCount 0 (of the record before), then the framing up to the value: length,
        # attributes 0, timestampDelta 0, offsetDelta, keyLength -1 (null key), valueLength
        framing = re.compile(rb"\x00(" + v + rb"\x00\x00" + v + rb"\x01" + v + rb")")
        _PLAIN = (framing, zz, mid, _length_tables())
    return _PLAIN


def decode_plain_values(buf: bytes, pos: int, h: BatchHeader) -> list | None:
    """The values of the (already checked) batch at ``pos`` if it is a plain batch, the
    shape ``encode_values`` writes: offsets dense, every record keyless and headerless,
    with timestamp delta 0 (so each record's offset is ``base_offset + i`` and its
    timestamp ``base_timestamp``). Otherwise None: use ``decode_values``/``decode_records``.

    The read loop's fast path, with no Python loop per record: one regex split (in C)
    cuts the batch at what looks like record framing, and the result is accepted only if
    the batch is, byte for byte, the encoding of the values found: the framing found is
    compared with the framing those values must have (built from the tables). A value
    that happens to contain framing-like bytes, or a batch of any other shape, gives None,
    never a wrong answer.
    """
    n = h.record_count
    end = pos + h.size
    if not h.attributes & COMPRESSION_MASK and _first_key_byte(buf, pos, end) != 1:
        return None  # the first record has a key (or is not of this shape): not plain
    if h.attributes & COMPRESSION_MASK and 0 < n < _TABLE_SIZE and h.last_offset_delta == n - 1:
        # the same test over the decompressed records, a header's worth of zeros in front
        raw = decompress_records(buf, pos, h)
        return decode_plain_values(bytes(HEADER_SIZE) + raw, 0, h._replace(
            attributes=h.attributes & ~COMPRESSION_MASK,
            batch_length=HEADER_SIZE - LOG_OVERHEAD + len(raw)))
    if (n < 1 or n >= _TABLE_SIZE or h.last_offset_delta != n - 1
            or h.attributes & COMPRESSION_MASK or end - pos <= HEADER_SIZE or buf[end - 1]):
        return None
    framing, zz, mid, lengths = _plain_tables()
    # records as [length, 0, 0, offsetDelta, 1, valueLength, value, 0]: with a 0 put in
    # front and the last 0 taken off, the batch splits into [b"", framing of record 0,
    # value 0, framing of record 1, ...]
    parts = framing.split(b"\x00" + buf[pos + HEADER_SIZE:end - 1])
    if len(parts) != 2 * n + 1 or parts[0]:
        return None
    values = parts[2::2]
    lens = list(map(len, values))
    # The framing each record must have: length, middle (0, 0, offsetDelta, -1), value
    # length. Framings are self-delimiting (varints end at a byte < 0x80), so if the
    # framings found, joined, equal these joined, each one equals its own.
    want = [b""] * (3 * n)
    try:
        want[0:192:3] = map(lengths[0].__getitem__, lens[:64])
        want[192:24576:3] = map(lengths[1].__getitem__, lens[64:8192])
        want[24576::3] = map(lengths[2].__getitem__, lens[8192:])
        want[2::3] = map(zz.__getitem__, lens)
    except IndexError:  # a value too long for the tables
        return None
    want[1::3] = mid[:n]
    if b"".join(want) != b"".join(parts[1::2]):
        return None
    return values


# ---------------------------------------------------------------- the keyed-batch fast path

_KEYED: tuple | None = None
_KEYED_LENGTHS: tuple | None = None  # (varint sizes, fixed part of a record with a short key)


def _keyed_tables() -> tuple:
    """(framing regex, zigzag table, size-with-varint table, varint -> int, value-varint
    size by the length of varint + value, fixed part of a record by offset delta) for
    ``encode_keyed`` and ``decode_keyed``; built on first use."""
    global _KEYED
    if _KEYED is None:
        import re
        zz, _mid, ln = _tables()
        v = rb"[\x80-\xff]{0,2}[\x00-\x7f]"  # a varint of 1 to 3 bytes
        # headerCount 0 (of the record before), then the record's length, attributes 0,
        # timestampDelta 0, offsetDelta, keyLength: three groups
        framing = re.compile(rb"\x00(" + v + rb")\x00\x00(" + v + rb")(" + v + rb")")
        sized = [i + n for i, n in enumerate(ln)]  # a field of i bytes with its length
        unzz = {z: i for i, z in enumerate(zz)}
        vskip = [1] * (_TABLE_SIZE + 4)
        for m in range(_TABLE_SIZE):
            vskip[m + ln[m]] = ln[m]
        # attributes, timestampDelta, offsetDelta, headerCount
        fixed = [3 + n for n in ln]
        mid2 = [b"\x00\x00" + z for z in zz]
        _KEYED = (framing, zz, sized, unzz, vskip, fixed, mid2)
        global _KEYED_LENGTHS
        _KEYED_LENGTHS = (ln, [f + 1 for f in fixed])
    return _KEYED


_KEYED_ENCODE: tuple | None = None  # the zigzag table shifted by 4, 5 and 6 (encode_keyed)


def _by_offset_size() -> tuple:
    """The zigzag table shifted by 4, 5 and 6: by its size less attributes,
    timestampDelta, headerCount and an offsetDelta of 1, 2 or 3 bytes, a keyed record's
    length varint (``encode_keyed``, ``_split_values``)."""
    global _KEYED_ENCODE
    if _KEYED_ENCODE is None:
        zz = _tables()[0]
        _KEYED_ENCODE = (zz[4:], zz[5:], zz[6:])
    return _KEYED_ENCODE


def _lookup(table: list, indexes: list[int]) -> tuple:
    """(table[i] for i in indexes) as a tuple, by one itemgetter call (cheaper in C than a
    map over table.__getitem__); ``indexes`` not empty."""
    if len(indexes) == 1:
        return (table[indexes[0]],)
    return itemgetter(*indexes)(table)


def encode_keyed(keys: Sequence[bytes], values: Sequence[bytes], timestamp: int,
                 base_offset: int = 0,
                 lengths: tuple[list[int], list[int]] | None = None) -> bytearray:
    """One batch of keyed, headerless records (no null key, no null value) that share one
    timestamp: the fast path of keyed ``fslog produce``. Each record is ``length | 0 | 0 |
    offsetDelta | keyLength | key | valueLength | value | 0``, its varints from tables,
    the batch from one join; exactly what ``encode_records`` writes for the same records.
    ``lengths``: the lengths of the keys and of the values, if the caller has them.
    """
    n = len(keys)
    if n == 0 or n != len(values):
        raise ValueError("a batch needs at least one record, and a value for each key")
    if lengths is not None:
        klens, vlens = lengths
        if len(klens) != n or len(vlens) != n:
            raise ValueError("encode_keyed: one key length and one value length a record")
    else:
        klens = list(map(len, keys))
        vlens = list(map(len, values))
    if n < _TABLE_SIZE:
        _framing, zz, sized, _unzz, _vskip, _fixed, mid2 = _keyed_tables()
        by_width = _by_offset_size()
        try:  # (a key or value too long for the tables: IndexError, the general path)
            sizes = list(map(add, _lookup(sized, klens), _lookup(sized, vlens)))
            parts = [b"\x00"] * (7 * n)  # every seventh item: headerCount 0
            # the record's length: key and value with their length varints, attributes,
            # timestampDelta and headerCount (3), and the offsetDelta varint, of 1 byte
            # below 64, 2 below 8192, then 3 (by_width: zz shifted by 3 + that)
            _by_delta_width(parts, 7, by_width, sizes)
        except IndexError:
            parts = None
        if parts is not None:
            parts[1::7] = mid2[:n]
            parts[2::7] = _lookup(zz, klens)
            parts[3::7] = keys
            parts[4::7] = _lookup(zz, vlens)
            parts[5::7] = values
            return _finish(b"".join(parts), n, timestamp, timestamp, base_offset)
    return encode_records([(k, v, timestamp, ()) for k, v in zip(keys, values)], base_offset)


def decode_keyed(buf: bytes, pos: int, h: BatchHeader, with_keys: bool = True,
                 with_values: bool = True) -> tuple[Any, Any] | None:
    """(keys, values) of the (already checked) batch at ``pos`` if it is a keyed batch
    the shape ``encode_keyed`` writes: offsets dense, every record with a key and a value
    and no headers, timestamp delta 0 (so record i has offset ``base_offset + i`` and the
    batch's base timestamp). Otherwise None: use ``decode_records``. With ``with_keys``
    False the keys are not returned: (None, values); ``with_values`` False, the values
    are not (a keys-only scan): (keys, None). The checks are the same.

    Two ways, both accepting a batch only if it is, byte for byte, the encoding of the
    keys and values found: ``_split_keyed`` (keys shorter than 64 bytes, of the lengths
    seen in earlier batches: one regex split yields keys and values as they are) and,
    when it cannot tell, ``_decode_keyed_framed``, which also learns the key lengths of
    the batch for the next time.
    """
    n = h.record_count
    end = pos + h.size
    if (n < 1 or n >= _TABLE_SIZE or h.last_offset_delta != n - 1
            or h.attributes & COMPRESSION_MASK or end - pos <= HEADER_SIZE or buf[end - 1]):
        return None
    first = _first_key_byte(buf, pos, end)
    if first < 0 or first & 1:  # a null key (or negative length), or not this shape
        return None
    if _SPLIT_KEYED is None:
        got = None
    elif with_keys:
        got = _split_keyed(buf, pos, end, n)
    else:
        got = None
        vals = _split_values(buf, pos, end, n)
        if vals is not None:
            return None, vals
    if got is None:
        got = _decode_keyed_framed(buf, pos, h, True, with_values)
        if got is None:
            return None
        _learn_key_lengths(got[0])
    return (got[0] if with_keys else None), (got[1] if with_values else None)


# The regex of ``_split_keyed`` and the key lengths it knows (each a branch of it).
_SPLIT_KEYED: Any = None
_SPLIT_VALUES: Any = None
_SPLIT_KEY_LENGTHS: frozenset = frozenset()
_SPLIT_MAX_LENGTHS = 12  # branches tried one after another: a few key lengths only
# With one key length k known: for an offsetDelta of w bytes (w = 1, 2, 3), the length
# varint of a record with a value of m bytes (zz(4 + w + k + len(zz(m)) + m)), by m; so a
# batch's record lengths come from its value lengths by one itemgetter call a range.
_SPLIT_HEADS: tuple | None = None
_SPLIT_SHIFTED: tuple | None = None  # zz shifted by 5, 6 and 7 (any key lengths)


def _learn_key_lengths(keys: Sequence[bytes]) -> None:
    """Add the lengths of these keys (below 64 bytes) to what ``_split_keyed`` knows."""
    global _SPLIT_KEYED, _SPLIT_VALUES, _SPLIT_KEY_LENGTHS
    lengths = set(map(len, keys))
    if lengths <= _SPLIT_KEY_LENGTHS or max(lengths) >= 64:
        return
    known = _SPLIT_KEY_LENGTHS | lengths
    if len(known) > _SPLIT_MAX_LENGTHS:
        known = frozenset(lengths) if len(lengths) <= _SPLIT_MAX_LENGTHS else frozenset()
    if not known:
        return
    import re
    v = rb"[\x80-\xff]{0,2}+[\x00-\x7f]"  # a varint of 1 to 3 bytes (possessive: they end at a byte < 0x80)
    kls = sorted(known)
    # the key length byte, then the key: as many bytes as that byte says (a lookbehind
    # at it picks the branch)
    branches = b"|".join(b"(?<=" + re.escape(bytes((2 * k,))) + b")" + b".{%d}" % k
                         for k in kls)
    klb = b"[" + b"".join(re.escape(bytes((2 * k,))) for k in kls) + b"]"
    # headerCount 0 (of the record before), then (length, attributes 0, timestampDelta
    # 0, offsetDelta), keyLength, (key), (valueLength)
    _SPLIT_KEYED = re.compile(rb"\x00(" + v + rb"\x00\x00" + v + rb")" + klb + b"(" + branches
                              + b")(" + v + b")", re.DOTALL)
    # values only: (length, 0, 0, offsetDelta), (keyLength and key: one branch a length,
    # each starting with its key length byte, which the regex engine tells apart before
    # trying the branch), (valueLength)
    keyed = b"|".join(re.escape(bytes((2 * k,))) + b".{%d}" % k for k in kls)
    _SPLIT_VALUES = re.compile(rb"\x00(" + v + rb"\x00\x00" + v + rb")(" + keyed + b")(" + v
                               + b")", re.DOTALL)
    _SPLIT_KEY_LENGTHS = frozenset(known)
    global _SPLIT_HEADS
    _SPLIT_HEADS = None
    if len(known) == 1:
        [k] = known
        zz = _tables()[0]
        sized = _keyed_tables()[2]  # m + the size of its varint: increasing
        # (a record too long for the table: IndexError, the general path)
        _SPLIT_HEADS = tuple(
            list(map(zz.__getitem__, map(add, sized[:bisect_left(sized, _TABLE_SIZE - c)],
                                         repeat(c))))
            for c in (5 + k, 6 + k, 7 + k))


def _by_delta_width(want: list, step: int, tables, lens: list) -> None:
    """Put into every ``step``-th slot of ``want``, from the first, the varint of each of
    ``lens`` looked up in ``tables[0]``, ``[1]`` or ``[2]``: the tables for records whose
    offsetDelta takes 1, 2 or 3 bytes (records 0-63, 64-8191, 8192 on). IndexError: a
    length beyond the tables."""
    n = len(lens)
    want[0:64 * step:step] = _lookup(tables[0], lens[:64])
    if n > 64:
        want[64 * step:8192 * step:step] = _lookup(tables[1], lens[64:8192])
        if n > 8192:
            want[8192 * step::step] = _lookup(tables[2], lens[8192:])


def _split_keyed(buf: bytes, pos: int, end: int, n: int) -> tuple[list, list] | None:
    """(keys, values) of a keyed batch whose keys all have lengths ``_SPLIT_KEYED``
    knows, or None. The split gives, per record, (length, 0, 0, offsetDelta), key,
    valueLength and value; accepted only if each record's length varint, offset delta
    and value length are the canonical encodings of what was found (the key length is
    the regex's own branch), so the batch is byte for byte the encoding of the result."""
    # over a view (no copy of the batch): the first record has no headerCount 0 before
    # it and stays whole in parts[0]; it is split on its own, with that 0 put in front
    split = _SPLIT_KEYED.split
    parts = split(memoryview(buf)[pos + HEADER_SIZE:end - 1])
    if len(parts) != 4 * n - 3:
        return None
    first = split(b"\x00" + parts[0])
    if len(first) != 5 or first[0]:
        return None
    parts[0:1] = first
    zz, _mid, _ln = _tables()
    _f, _zz, sized, _u, _vs, _fx, mid2 = _keyed_tables()
    keys = parts[2::4]
    values = parts[4::4]
    vlens = list(map(len, values))
    want = [b""] * (2 * n)
    try:
        if parts[3::4] != list(_lookup(zz, vlens)):
            return None
        heads = _SPLIT_HEADS
        if heads is not None:  # one key length (the regex's only branch): lengths by table
            _by_delta_width(want, 2, heads, vlens)
        else:
            # each record's length: attributes, timestampDelta, headerCount, keyLength (one
            # byte: keys are shorter than 64: 4), offsetDelta (w bytes), key, valueLength,
            # value: zz shifted by 4 + w, at the key's length + the value's with its varint
            global _SPLIT_SHIFTED
            if _SPLIT_SHIFTED is None:
                _SPLIT_SHIFTED = (zz[5:], zz[6:], zz[7:])
            _by_delta_width(want, 2, _SPLIT_SHIFTED,
                            list(map(add, map(len, keys), _lookup(sized, vlens))))
    except IndexError:  # a length outside the tables
        return None
    want[1::2] = mid2[:n]
    # each head found is (varint, 0, 0, varint), as each wanted one is: the heads joined
    # equal the wanted ones joined only if each equals its own
    if b"".join(parts[1::4]) != b"".join(want):
        return None
    return keys, values


def _split_values(buf: bytes, pos: int, end: int, n: int) -> list | None:
    """``_split_keyed`` for the values only. The split gives, per record, (length, 0,
    0, offsetDelta), keyLength with the key, valueLength and value; accepted only if each
    record's length varint, offset delta and value length are the canonical encodings of
    what was found (the key length byte is the regex's own branch), so the batch is byte
    for byte the encoding of the values found and keys of those lengths."""
    split = _SPLIT_VALUES.split
    parts = split(memoryview(buf)[pos + HEADER_SIZE:end - 1])
    if len(parts) != 4 * n - 3:
        return None
    first = split(b"\x00" + parts[0])
    if len(first) != 5 or first[0]:
        return None
    parts[0:1] = first
    zz, _mid, _ln = _tables()
    _f, _zz, sized, _u, _vs, _fx, mid2 = _keyed_tables()
    values = parts[4::4]
    vlens = list(map(len, values))
    # heads (length, 0, 0, offsetDelta) and valueLengths as found, one after the other
    found = [b""] * (2 * n)
    found[0::2] = parts[1::4]
    found[1::2] = parts[3::4]
    want = [b""] * (3 * n)
    try:
        # each record's length less attributes, timestampDelta, offsetDelta and
        # headerCount: keyLength and key, valueLength and value; its varint from the
        # table for the offsetDelta's size (as in encode_keyed)
        _by_delta_width(want, 3, _by_offset_size(),
                        list(map(add, map(len, parts[2::4]), _lookup(sized, vlens))))
        want[2::3] = _lookup(zz, vlens)
    except IndexError:  # a length outside the tables
        return None
    want[1::3] = mid2[:n]
    # varints and zeros in the same pattern on both sides, each self-delimiting: joined
    # equal, each equals its own
    if b"".join(found) != b"".join(want):
        return None
    return values


def _decode_keyed_framed(buf: bytes, pos: int, h: BatchHeader, with_keys: bool = True,
                         with_values: bool = True) -> tuple[Any, Any] | None:
    """``decode_keyed`` for any key lengths (the split cannot tell them): the same result,
    or None.

    As ``decode_plain_values``: one regex split (in C) cuts the batch at what looks like
    record framing, keys and values are sliced out by map calls, and the result is
    accepted only if the batch is, byte for byte, the encoding of the keys and values
    found: every varint found is compared with the canonical encoding of the length it
    must hold (record length, offset delta, key length, value length). A key or value
    that happens to contain framing-like bytes, or any other shape, gives None.
    """
    n = h.record_count
    end = pos + h.size
    if (n < 1 or n >= _TABLE_SIZE or h.last_offset_delta != n - 1
            or h.attributes & COMPRESSION_MASK or end - pos <= HEADER_SIZE or buf[end - 1]):
        return None
    framing, zz, _sized, unzz, vskip, fixed, _mid2 = _keyed_tables()
    ln, fixed1 = _KEYED_LENGTHS  # type: ignore[misc]
    # records as [length, 0, 0, offsetDelta, keyLength, key, valueLength, value, 0]: with a
    # 0 put in front and the last 0 taken off, the batch splits into [b"", length 0,
    # offsetDelta 0, keyLength 0, key+valueLength+value 0, length 1, ...]
    parts = framing.split(b"\x00" + buf[pos + HEADER_SIZE:end - 1])
    if len(parts) != 4 * n + 1 or parts[0]:
        return None
    bodies = parts[4::4]
    try:
        klens = list(map(unzz.__getitem__, parts[3::4]))  # canonical varints only
        # each body is key | valueLength | value: the size of the valueLength varint
        # follows from the length of what comes after the key
        blens = list(map(len, bodies))
        starts = list(map(add, klens, map(vskip.__getitem__, map(sub, blens, klens))))
        if with_values:
            values = list(map(getitem, bodies, map(slice, starts, repeat(None))))
            vlens = map(len, values)
        else:
            values = None
            vlens = map(sub, blens, starts)
        # a key longer than its body leaves an empty valueLength: no match here
        if list(map(getitem, bodies, map(slice, klens, starts))) != \
                list(map(zz.__getitem__, vlens)) or parts[2::4] != zz[:n]:
            return None
        # so each body is exactly key | valueLength | value, and the record's length is
        # attributes, timestampDelta, offsetDelta, keyLength, body, headerCount
        if max(klens) < 64:  # one-byte key lengths
            lens = map(add, blens, fixed1[:n])
        else:
            lens = map(add, map(add, blens, map(ln.__getitem__, klens)), fixed[:n])
        if parts[1::4] != list(map(zz.__getitem__, lens)):
            return None
    except (KeyError, IndexError):  # a varint or a length outside the tables
        return None
    if not with_keys:
        return None, values
    keys = list(map(getitem, bodies, map(slice, klens)))
    return keys, values
