"""Compression of a RecordBatch's records section: Kafka's four codecs.

A compressed batch keeps its 61-byte header as it is (``batchLength`` and the CRC cover
the compressed bytes, ``recordCount`` and ``lastOffsetDelta`` count the records inside);
only the bytes after the header — the records, one after another — are compressed as
one stream. Bits 0-2 of the batch's attributes name the codec:

    0 none   1 gzip   2 snappy   3 lz4   4 zstd

What each codec's stream is, as Kafka's clients write and read it:

- gzip: a gzip stream (RFC 1952), possibly of several members. Written at level 6 (the
  default of zlib and of Kafka's ``compression.gzip.level``).
- snappy: either one raw snappy block (librdkafka writes this) or the xerial framing
  (Kafka's Java client, kafka-python and aiokafka write this): the 16-byte header
  ``\\x82SNAPPY\\x00``, version 1, compatible version 1 (int32 big-endian each), then
  blocks of (int32 big-endian compressed length, raw snappy block). The header tells
  them apart. fslog writes the xerial framing with 32 KiB blocks, as the Java client.
- lz4: an LZ4 frame (the standard frame format; Kafka uses it for magic 2). fslog writes
  frames as Kafka's Java client does: FLG version 01 with *independent* blocks and no
  block or content checksum, BD with 64 KiB blocks, the header checksum byte (bits 8-15
  of xxHash32 of FLG and BD), blocks (uint32 little-endian size, high bit set for a block
  stored uncompressed) and the zero end mark. Java refuses frames with linked blocks.
- zstd: a Zstandard frame, written at level 3.

Pure functions of bytes, no I/O; safe to call from any thread.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from ..errors import CorruptRecordError, UnsupportedCompressionError


class _OnFirstUse:
    """cramjam (snappy, lz4, zstd), imported when a codec first needs it: the import
    costs every start of ``fslog``, and most batches are not compressed."""

    def __getattr__(self, name: str) -> Any:
        import cramjam as module
        globals()["cramjam"] = module
        return getattr(module, name)


cramjam: Any = _OnFirstUse()

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
CODECS = {"none": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}
NAMES = {v: k for k, v in CODECS.items()}
GZIP_LEVEL = 6
ZSTD_LEVEL = 3

XERIAL_MAGIC = b"\x82SNAPPY\x00"
XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
XERIAL_BLOCK = 32 * 1024

LZ4_MAGIC = b"\x04\x22\x4d\x18"  # 0x184D2204, little-endian
LZ4_BLOCK = 64 * 1024
_LZ4_FLG = 0x60  # version 01, block independence; no block/content checksum, size or dict id
_LZ4_BD = 0x40   # block maximum size 64 KiB
_U32 = struct.Struct("<I")
_I32 = struct.Struct(">i")


def codec_name(codec: int) -> str:
    return NAMES.get(codec, f"codec {codec}")


def codec_for(name: str) -> int:
    """The codec number for a name (``none``, ``gzip``, ``snappy``, ``lz4``, ``zstd``);
    ValueError listing them otherwise."""
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown compression {name!r}: use one of "
                         f"{', '.join(CODECS)}") from None


# ---------------------------------------------------------------- xxHash32 (lz4 header)

_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """xxHash32 of short ``data`` (an LZ4 frame descriptor: a few bytes). Pure Python."""
    n = len(data)
    p = 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed & _M32, (seed - _P1) & _M32]
        while p + 16 <= n:
            for i in range(4):
                lane = _U32.unpack_from(data, p)[0]
                v[i] = (_rotl((v[i] + lane * _P2) & _M32, 13) * _P1) & _M32
                p += 4
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while p + 4 <= n:
        h = (_rotl((h + _U32.unpack_from(data, p)[0] * _P3) & _M32, 17) * _P4) & _M32
        p += 4
    while p < n:
        h = (_rotl((h + data[p] * _P5) & _M32, 11) * _P1) & _M32
        p += 1
    h ^= h >> 15
    h = (h * _P2) & _M32
    h ^= h >> 13
    h = (h * _P3) & _M32
    h ^= h >> 16
    return h


_LZ4_HEADER = LZ4_MAGIC + bytes((_LZ4_FLG, _LZ4_BD, (xxh32(bytes((_LZ4_FLG, _LZ4_BD))) >> 8) & 0xFF))
_LZ4_END = b"\x00\x00\x00\x00"


# ---------------------------------------------------------------- compress

def _gzip(data) -> bytes:
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def _snappy_xerial(data) -> bytes:
    mv = memoryview(data)
    parts = [XERIAL_HEADER]
    for i in range(0, len(mv), XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(mv[i:i + XERIAL_BLOCK]))
        parts.append(_I32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _lz4_frame(data) -> bytes:
    mv = memoryview(data)
    parts = [_LZ4_HEADER]
    compress_block = cramjam.lz4.compress_block
    for i in range(0, len(mv), LZ4_BLOCK):
        chunk = mv[i:i + LZ4_BLOCK]
        block = bytes(compress_block(chunk, store_size=False))
        if len(block) < len(chunk):
            parts.append(_U32.pack(len(block)))
            parts.append(block)
        else:  # incompressible: stored as it is, flagged by the size's high bit
            parts.append(_U32.pack(len(chunk) | 0x80000000))
            parts.append(bytes(chunk))
    parts.append(_LZ4_END)
    return b"".join(parts)


def _zstd(data) -> bytes:
    return bytes(cramjam.zstd.compress(data, level=ZSTD_LEVEL))


_COMPRESS = {GZIP: _gzip, SNAPPY: _snappy_xerial, LZ4: _lz4_frame, ZSTD: _zstd}


def compress(codec: int, data) -> bytes:
    """``data`` (the records of a batch, bytes-like) compressed with ``codec`` (1-4)."""
    try:
        fn = _COMPRESS[codec]
    except KeyError:
        raise ValueError(f"cannot compress with {codec_name(codec)}") from None
    return fn(data)


# ---------------------------------------------------------------- decompress

class _TooLarge(ValueError):
    pass


def _too_large(limit: int) -> _TooLarge:
    return _TooLarge(f"it inflates past the limit of {limit:,} bytes")


def _gunzip(data, limit: int | None = None) -> bytes:
    out = []
    rest = bytes(data)
    room = limit
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if room is None:
            out.append(d.decompress(rest))
        else:
            chunk = d.decompress(rest, room + 1)
            if len(chunk) > room:
                raise _too_large(limit)  # type: ignore[arg-type]
            room -= len(chunk)
            out.append(chunk)
        if not d.eof:
            raise ValueError("gzip stream is cut short")
        rest = d.unused_data
        if not rest.strip(b"\x00"):  # (trailing zero padding, as gzip(1) tolerates)
            return b"".join(out)


def _unsnappy_block(block, room: int | None) -> bytes:
    if room is not None and cramjam.snappy.decompress_raw_len(block) > room:
        raise _TooLarge()
    return bytes(cramjam.snappy.decompress_raw(block))


def _unsnappy(data, limit: int | None = None) -> bytes:
    mv = memoryview(data)
    try:
        if bytes(mv[:8]) != XERIAL_MAGIC:
            return _unsnappy_block(mv, limit)
        if len(mv) < 16:
            raise ValueError("xerial snappy header is cut short")
        out = []
        room = limit
        p = 16
        n = len(mv)
        while p < n:
            if p + 4 > n:
                raise ValueError("xerial snappy block length is cut short")
            length = _I32.unpack_from(mv, p)[0]
            p += 4
            if length < 0 or p + length > n:
                raise ValueError(f"xerial snappy block of {length} bytes runs past the end")
            out.append(_unsnappy_block(mv[p:p + length], room))
            if room is not None:
                room -= len(out[-1])
            p += length
        return b"".join(out)
    except _TooLarge:
        raise _too_large(limit) from None  # type: ignore[arg-type]


def _bounded_into(decompress_into, data, limit: int) -> bytes:
    """Decompress into buffers that grow fourfold up to ``limit`` + 1 bytes: a stream
    that would inflate past ``limit`` is refused without ever being held whole."""
    size = min(limit + 1, max(1 << 16, 4 * len(data)))
    while True:
        out = bytearray(size)
        try:
            n = decompress_into(data, out)
        except cramjam.DecompressionError as e:
            # cramjam 2.x says "failed to write whole buffer" when ``out`` is too small
            # (pinned <3 in pyproject.toml; tests/test_compression.py fails if that text
            # changes, since a valid stream larger than the first buffer would be refused)
            if "whole buffer" not in str(e):
                raise
            if size > limit:
                raise _too_large(limit) from None
            size = min(limit + 1, size * 4)
            continue
        if n > limit:
            raise _too_large(limit)
        return bytes(memoryview(out)[:n])


def _unlz4(data, limit: int | None = None) -> bytes:
    if limit is not None:
        return _bounded_into(cramjam.lz4.decompress_into, data, limit)
    return bytes(cramjam.lz4.decompress(data))


def _unzstd(data, limit: int | None = None) -> bytes:
    if limit is not None:
        return _bounded_into(cramjam.zstd.decompress_into, data, limit)
    return bytes(cramjam.zstd.decompress(data))


_DECOMPRESS = {GZIP: _gunzip, SNAPPY: _unsnappy, LZ4: _unlz4, ZSTD: _unzstd}


def decompress(codec: int, data, limit: int | None = None) -> bytes:
    """The records section ``data`` (bytes-like) of a batch compressed with ``codec``,
    decompressed. Raises ``UnsupportedCompressionError`` for a codec Kafka does not
    define (5-7) and ``CorruptRecordError`` for bytes that are not a valid stream of the
    codec, or that inflate past ``limit`` bytes (given where the bytes come from the
    network: a small batch must not be able to fill the server's memory); the caller
    adds the file, position and offset."""
    fn = _DECOMPRESS.get(codec)
    if fn is None:
        raise UnsupportedCompressionError(
            f"unknown compression codec {codec} in the batch attributes (Kafka defines "
            f"0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)")
    try:
        return fn(data, limit)
    except (ValueError, zlib.error, cramjam.DecompressionError) as e:
        raise CorruptRecordError(f"{codec_name(codec)} data does not decompress ({e})") from None
