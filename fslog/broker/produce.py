"""Produce (key 0), v3-9 (v0 advertised, see ``versions.py``): one record batch per
partition, checked and appended as sent, bytes untouched but for what Kafka's broker
itself sets (base offset, partition leader epoch; LogAppendTime's timestamp).

Checks, each with Kafka's error code: the topic name (INVALID_TOPIC_EXCEPTION), the
topic and partition (UNKNOWN_TOPIC_OR_PARTITION; topics are auto-created as for
Metadata), acks (INVALID_REQUIRED_ACKS), size (MESSAGE_TOO_LARGE over the topic's
max.message.bytes), exactly one RecordBatch v2 whose length matches (INVALID_RECORD),
the CRC (CORRUPT_MESSAGE), the record framing of an uncompressed batch (each record's
length walked, count and end matched: INVALID_RECORD; the records themselves are not
decoded), the compression codec (gzip, snappy, lz4, zstd are stored as sent: only the
outer batch is checked), and idempotent-producer sequences (``producer_state.py``).
A topic whose ``compression.type`` names a codec (or ``uncompressed``) gets batches in
that codec: one sent in another is recompressed (``recompress``), as Kafka's broker does.
Transactions are not supported: a transactional Produce gets
TRANSACTIONAL_ID_AUTHORIZATION_FAILED and a log line saying why.

acks=0: no response; acks=1: answered once appended (visible to readers), fsynced
within flush.ms; acks=-1 (all): answered once fsynced (one fsync shared by every
producer waiting on the partition: ``fsync.py``). Appends to one partition are
serialized (asyncio lock) so that the sequence check and the append are one step.
"""

from __future__ import annotations

import asyncio
import struct
import time

from kio.schema.errors import ErrorCode

from ..errors import FslogError, InvalidNameError, RecordTooLargeError
from ..records import batch as rb
from ..records import compression
from ..records.batch import uvarint
from .handlers import Deferred, RawFrame, RequestContext, handles
from .metadata import ensure_topic
from .producer_state import DUPLICATE, NONE, last_sequence
from .replicas import min_insync

_LOG_APPEND_TIME_FLAG = 0x08
_TRANSACTIONAL_FLAG = 0x10
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_Q = struct.Struct(">q")
_PART = struct.Struct(">ihqq")  # index, error_code, base_offset, log_append_time_ms


def check_batch(records, limit: int) -> tuple[ErrorCode, str | None, rb.BatchHeader | None]:
    """(error, message, header) for the records of one partition of a Produce."""
    if not records:
        return ErrorCode.invalid_record, "no records", None
    n = len(records)
    if n < rb.HEADER_SIZE:
        return ErrorCode.corrupt_message, f"{n} bytes are shorter than a batch header", None
    h = rb.read_header(records, 0)
    if h.magic != rb.MAGIC:
        return (ErrorCode.unsupported_for_message_format,
                f"magic {h.magic}: only RecordBatch v2 (magic 2) is accepted", None)
    if h.batch_length < rb.HEADER_SIZE - rb.LOG_OVERHEAD or h.size > n:
        return ErrorCode.corrupt_message, f"batch length {h.batch_length} does not fit {n} bytes", None
    if h.size != n:
        return ErrorCode.invalid_record, "more than one batch for a partition", None
    if n > limit:
        return (ErrorCode.message_too_large,
                f"a batch of {n} bytes exceeds max.message.bytes={limit}", None)
    if rb.crc32c_range(records, rb.CRC_START, n) != h.crc:
        return ErrorCode.corrupt_message, "CRC mismatch", None
    if h.record_count < 1 or h.last_offset_delta != h.record_count - 1:
        return (ErrorCode.invalid_record,
                f"{h.record_count} records with last offset delta {h.last_offset_delta}", None)
    if h.attributes & rb.CONTROL_FLAG:
        return ErrorCode.invalid_record, "control batches come from brokers only", None
    codec = h.attributes & rb.COMPRESSION_MASK
    if codec > 4:
        return ErrorCode.invalid_record, f"unknown compression codec {codec}", None
    if codec == 0 and not records_framed(records, h.record_count):
        return ErrorCode.invalid_record, "record lengths do not match the batch", None
    return ErrorCode.none, None, h


def records_framed(buf, count: int) -> bool:
    """Do ``count`` records, walked by their length varints, end exactly at the end of
    the batch? The one loop per record on the produce path: a length, a jump."""
    p = rb.HEADER_SIZE
    end = len(buf)
    try:
        for _ in range(count):
            b = buf[p]
            if b < 0x80:
                if b & 1 or b == 0:
                    return False
                p += 1 + (b >> 1)
            else:
                c = buf[p + 1]
                if c < 0x80:
                    z = b & 0x7F | c << 7
                    if z & 1 or z == 0:  # a negative or zero length (zigzag)
                        return False
                    p += 2 + (z >> 1)
                else:
                    length, q = rb.read_varint(buf, p)
                    if length <= 0:
                        return False
                    p = q + length
            if p > end:
                return False
    except (IndexError, ValueError):
        return False
    return p == end


def topic_codec(compression_type: str) -> int | None:
    """The codec a topic's ``compression.type`` stores batches in; None for ``producer``
    (each batch as its producer sent it)."""
    if compression_type == "producer":
        return None
    return compression.NONE if compression_type == "uncompressed" \
        else compression.codec_for(compression_type)


def recompress(records, h: rb.BatchHeader, codec: int,
               limit: int | None = None) -> tuple[bytearray | None, str | None]:
    """The checked batch ``records`` with its records in ``codec`` (``compression.NONE``:
    uncompressed), and None; or None and why the records inside are not sound (a
    compressed batch that does not decompress, or whose record lengths do not match its
    count). The header stays but for the codec bits, the length and the CRC. Compressing
    that does not make the records smaller leaves them uncompressed (``compress_batch``).
    Records that would inflate past ``limit`` bytes are refused before they are held."""
    if not h.attributes & rb.COMPRESSION_MASK:  # framing already checked
        return rb.compress_batch(bytearray(records), codec), None
    plain = bytearray(records[:rb.HEADER_SIZE])
    try:
        plain += rb.decompress_records(records, 0, h, limit=limit)
    except FslogError as e:
        return None, str(e)
    struct.pack_into(">i", plain, 8, len(plain) - rb.LOG_OVERHEAD)  # batchLength
    struct.pack_into(">h", plain, rb.CRC_START, h.attributes & ~rb.COMPRESSION_MASK)
    if not records_framed(plain, h.record_count):
        return None, "record lengths inside the compressed batch do not match its count"
    if codec == compression.NONE:
        struct.pack_into(">I", plain, 17, rb.crc32c_range(plain, rb.CRC_START, len(plain)))
        return plain, None
    return rb.compress_batch(plain, codec), None


class _Result:
    __slots__ = ("code", "base", "log_append_time", "log_start", "message", "wait",
                 "replicate")

    def __init__(self, code=ErrorCode.none, base=-1, message=None):
        self.code = code
        self.base = base
        self.log_append_time = -1
        self.log_start = -1
        self.message = message
        self.wait = None
        self.replicate = None  # acks=all: (topic, partition, next offset, min.insync.replicas)


def _locks(server) -> dict:
    locks = getattr(server, "_produce_locks", None)
    if locks is None:
        locks = server._produce_locks = {}
    return locks


async def _produce_partition(ctx: RequestContext, topic: str, index: int, records,
                             acks: int) -> _Result:
    try:
        t = ctx.storage.topic(topic)  # a stat of topic.json: no worker thread needed
    except (InvalidNameError, TypeError):
        t = None  # ensure_topic says why
    if t is None:
        t, code = await ctx.run(ensure_topic, ctx, topic, True)
    if t is None:
        return _Result(code)
    if not 0 <= index < t.partition_count:
        return _Result(ErrorCode.unknown_topic_or_partition)
    cfg = t.config
    code, why, h = check_batch(records, cfg.max_message_bytes)
    if h is None:
        ctx.log.info("serve: %s: Produce to %s/%d refused: %s (%s)", ctx.connection.peer,
                     topic, index, why, code.name.upper())
        return _Result(code, message=why)
    if h.attributes & _TRANSACTIONAL_FLAG:
        return _Result(ErrorCode.transactional_id_authorization_failed,
                       message="transactions are not supported by fslog serve")
    target = topic_codec(cfg.get("compression.type"))
    if target is not None and h.attributes & rb.COMPRESSION_MASK != target:
        # the topic names a codec: recompress as Kafka's broker does (C, a worker thread)
        batch, why = await ctx.run(recompress, records, h, target,
                                   ctx.server.config.max_request_bytes)
        if batch is None:
            ctx.log.info("serve: %s: Produce to %s/%d refused: %s (INVALID_RECORD)",
                         ctx.connection.peer, topic, index, why)
            return _Result(ErrorCode.invalid_record, message=why)
    else:
        batch = bytearray(records)
    _I32.pack_into(batch, 12, 0)  # partitionLeaderEpoch: fslog's is 0
    res = _Result()
    if cfg.get("message.timestamp.type") == "LogAppendTime":
        now = int(time.time() * 1000)
        batch[22] = batch[22] | _LOG_APPEND_TIME_FLAG  # attributes, low byte
        _Q.pack_into(batch, 35, now)  # maxTimestamp
        struct.pack_into(">I", batch, 17, rb.crc32c_range(batch, rb.CRC_START, len(batch)))
        res.log_append_time = now
    if acks == -1 and not ctx.server.replicas.enough(topic, index, min_insync(cfg)):
        return _Result(ErrorCode.not_enough_replicas, message=(
            f"min.insync.replicas={min_insync(cfg)} and "
            f"{ctx.server.replicas.isr_size(topic, index)} replica(s) in sync"))
    key = (topic, index)
    locks = _locks(ctx.server)
    lock = locks.get(key)
    if lock is None:
        lock = locks[key] = asyncio.Lock()
    async with lock:
        pids = None
        if h.producer_id >= 0 and h.base_sequence >= 0:
            pids = await ctx.server.producers.partition(topic, index)
            last_seq = last_sequence(h.base_sequence, h.last_offset_delta)
            verdict, original = pids.check(h.producer_id, h.producer_epoch, h.base_sequence,
                                           last_seq)
            if verdict == DUPLICATE:
                res.base = original
                return res
            if verdict != NONE:
                code = ErrorCode(verdict)
                ctx.log.info("serve: %s: Produce to %s/%d refused: producer %d epoch %d "
                             "sequence %d (%s)", ctx.connection.peer, topic, index,
                             h.producer_id, h.producer_epoch, h.base_sequence, code.name.upper())
                return _Result(code)
        try:
            if ctx.storage.append_is_quick(t, index, len(batch), h.max_timestamp):
                # a plain write of a batch: on the loop, no thread hand-over (latency)
                res.base, res.log_start = ctx.storage.append(topic, index, batch, t)
            else:
                res.base, res.log_start = await ctx.run(ctx.storage.append, topic, index,
                                                        batch)
        except RecordTooLargeError as e:
            return _Result(ErrorCode.message_too_large, message=str(e))
        except (FslogError, OSError) as e:
            ctx.log.error("serve: append to %s/%d failed: %s", topic, index, e)
            return _Result(ErrorCode.kafka_storage_error, message=str(e))
        if pids is not None:
            pids.record(h.producer_id, h.producer_epoch, h.base_sequence, last_seq, res.base)
    ctx.server.wakeups.notify(ctx.storage.partition_path(topic, index))
    if acks == -1:
        res.wait = ctx.server.fsyncs.durable(topic, index)
        res.replicate = (topic, index, res.base + h.last_offset_delta + 1, min_insync(cfg))
    else:
        ctx.server.fsyncs.schedule(topic, index, cfg.get("flush.ms"))
    return res


def _response(ctx: RequestContext, results: list[tuple[str, list[tuple[int, _Result]]]]
              ) -> RawFrame:
    return RawFrame([encode_response(ctx.api_version, ctx.correlation_id, results)])


def encode_response(version: int, correlation_id: int,
                    results: list[tuple[str, list[tuple[int, _Result]]]]) -> bytes:
    """A ProduceResponse frame (v3-9), encoded here rather than by kio (a fifth of a
    small Produce's cost). Kafka's layout (the numbers are the versions that have a
    field)::

        size int32, correlation_id int32, [header tagged fields: v9]
        responses: [name string,
                    partition_responses: [index int32, error_code int16,
                                          base_offset int64, log_append_time_ms int64,
                                          log_start_offset int64 (v5+),
                                          record_errors [batch_index int32,
                                              batch_index_error_message nullable string]
                                              (v8+: always empty here),
                                          error_message nullable string (v8+),
                                          [tagged fields: v9]],
                    [tagged fields: v9]]
        throttle_time_ms int32, [tagged fields: v9]

    v9 is flexible (uvarint lengths + 1, 0 for null; tagged fields, none here)."""
    flexible = version >= 9
    out = bytearray(_I32.pack(correlation_id))
    if flexible:
        out += b"\0"
    out += uvarint(len(results) + 1) if flexible else _I32.pack(len(results))
    for name, parts in results:
        raw = name.encode()
        out += (uvarint(len(raw) + 1) if flexible else _I16.pack(len(raw))) + raw
        out += uvarint(len(parts) + 1) if flexible else _I32.pack(len(parts))
        for index, r in parts:
            out += _PART.pack(index, r.code, r.base, r.log_append_time)
            if version >= 5:
                out += _Q.pack(r.log_start)
            if version >= 8:
                out += b"\x01" if flexible else b"\0\0\0\0"  # no record errors
                msg = None if r.message is None else r.message.encode()
                if flexible:
                    out += b"\0" if msg is None else uvarint(len(msg) + 1) + msg
                else:
                    out += b"\xff\xff" if msg is None else _I16.pack(len(msg)) + msg
            if flexible:
                out += b"\0"
        if flexible:
            out += b"\0"
    out += _I32.pack(0)  # throttle_time_ms
    if flexible:
        out += b"\0"
    return _I32.pack(len(out)) + out



@handles(0)
async def produce(ctx: RequestContext, request):
    acks = request.acks
    results: list[tuple[str, list[tuple[int, _Result]]]] = []
    if request.transactional_id is not None:
        ctx.log.warning("serve: %s: transactional producer %r refused: fslog serve does not "
                        "support transactions", ctx.connection.peer, request.transactional_id)
        fail = ErrorCode.transactional_id_authorization_failed
    elif acks not in (0, 1, -1):
        fail = ErrorCode.invalid_required_acks
    else:
        fail = None
    for td in request.topic_data:
        parts = []
        for pd in td.partition_data:
            if fail is not None:
                parts.append((pd.index, _Result(fail)))
            else:
                parts.append((pd.index, await _produce_partition(ctx, td.name, pd.index,
                                                                 pd.records, acks)))
        results.append((td.name, parts))
    if acks == 0:
        return None
    waits = [r for _n, parts in results for _i, r in parts if r.wait is not None]
    if not waits:
        return _response(ctx, results)

    timeout = max(0.001, request.timeout.total_seconds()) if hasattr(request, "timeout") else 30.0

    async def durable():
        for r in waits:
            try:
                await r.wait
            except Exception as e:  # the fsync failed: not acknowledged
                r.code, r.message = ErrorCode.kafka_storage_error, f"fsync failed: {e}"
                continue
            if r.replicate is not None:  # and on the in-sync followers (replicas.py)
                why = await ctx.server.replicas.wait_replicated(*r.replicate, timeout=timeout)
                if why is not None:
                    r.code = ErrorCode[why]
        return _response(ctx, results)

    return Deferred(durable())
