"""fslog serve at the protocol level (raw frames through kio): Kafka's error codes for
bad produce input, idempotent-producer sequences across a restart, acks=0, pipelining,
long-poll Fetch woken by ``fslog produce`` in another process, bad frames, limits."""

from __future__ import annotations

import datetime
import struct
import time

from conftest import wait_for
from kafka_wire import Wire, make_batch, request_frame
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v12 import request as F
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.list_offsets.v7 import request as LO
from kio.schema.metadata.v12 import request as M
from kio.schema.produce.v9 import request as P
from serve_fixtures import serve, start_serve  # noqa: F401

S = datetime.timedelta(seconds=1)


def produce_req(topic: str, partition: int, records: bytes | None, acks: int = -1,
                transactional_id=None):
    return P.ProduceRequest(transactional_id=transactional_id, acks=acks, timeout=30 * S,
                            topic_data=(P.TopicProduceData(name=topic, partition_data=(
                                P.PartitionProduceData(index=partition, records=records),)),))


def produce(w: Wire, topic: str, partition: int, records, acks: int = -1, **kw):
    resp = w.call(0, 9, produce_req(topic, partition, records, acks, **kw))
    return resp.responses[0].partition_responses[0]


def fetch_req(topic: str, partition: int, offset: int, max_wait_s: float = 0,
              min_bytes: int = 1, max_bytes: int = 1 << 20):
    return F.FetchRequest(max_wait=datetime.timedelta(seconds=max_wait_s), min_bytes=min_bytes,
                          max_bytes=max_bytes, isolation_level=0, session_id=0, session_epoch=-1,
                          topics=(F.FetchTopic(topic=topic, partitions=(F.FetchPartition(
                              partition=partition, fetch_offset=offset,
                              partition_max_bytes=max_bytes),)),),
                          forgotten_topics_data=(), rack_id="")


def fetched(resp):
    return resp.responses[0].partitions[0]


def metadata_req(*topics, auto=True):
    return M.MetadataRequest(topics=tuple(M.MetadataRequestTopic(name=t, topic_id=None)
                                          for t in topics),
                             allow_auto_topic_creation=auto,
                             include_topic_authorized_operations=False)


def values(cli, topic):
    return [r.value for r in cli.records(topic)]


# ---------------------------------------------------------------- ApiVersions, Metadata
def test_api_versions_lists_the_table_and_answers_unknown_versions_at_v0(serve):  # noqa: F811
    with Wire(serve.bootstrap) as w:
        r = w.call(18, 3, ApiVersionsRequest(client_software_name="t",
                                              client_software_version="1"))
        keys = {k.api_key: (k.min_version, k.max_version) for k in r.api_keys}
        assert r.error_code == ErrorCode.none
        assert keys[0] == (0, 9) and keys[1] == (4, 12) and keys[3] == (0, 12)
        assert keys[18] == (0, 4) and keys[2] == (1, 7) and keys[22] == (0, 4)
        # v7 does not exist: a v0 body (header v0) with error 35 and the ranges
        frame = request_frame(18, 3, 77, ApiVersionsRequest(client_software_name="t",
                                                             client_software_version="1"))
        frame = frame[:6] + struct.pack(">h", 7) + frame[8:]
        w.send_raw(frame)
        resp = w.read_frame()
        corr, error, n = struct.unpack_from(">ihi", resp, 0)
        assert (corr, error) == (77, 35) and n == len(keys)


def test_metadata_auto_creates_unless_told_not_to_and_refuses_bad_names(cli):
    s = start_serve(cli, "--no-auto-create-topics")
    try:
        with Wire(s.bootstrap) as w:
            r = w.call(3, 12, metadata_req("nope", "bad name"))
            codes = {t.name: t.error_code for t in r.topics}
            assert codes == {"nope": ErrorCode.unknown_topic_or_partition,
                             "bad name": ErrorCode.invalid_topic_exception}
        assert not (cli.root / "topics" / "nope").exists()
    finally:
        s.kill()
    s = start_serve(cli)
    try:
        with Wire(s.bootstrap) as w:
            r = w.call(3, 12, metadata_req("fresh"))
            assert r.topics[0].error_code == ErrorCode.none and len(r.topics[0].partitions) == 1
            assert r.brokers[0].port == s.port and r.controller_id == 0
        assert cli.log().topic("fresh").partition_count == 1
    finally:
        s.kill()


# ---------------------------------------------------------------- Produce checks
def test_bad_produce_input_gets_kafka_error_codes_and_writes_nothing(cli, serve):  # noqa: F811
    cli.create("t", "--partitions", "2", "--config", "max.message.bytes=2000")
    good = make_batch([b"a", b"b"])
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0xFF
    # a record length that runs past the batch: framing broken, CRC made right again
    bad_framing = bytearray(good)
    bad_framing[61] = 0x7E
    struct.pack_into(">I", bad_framing, 17, __import__("fslog").records.batch.crc32c(
        bytes(bad_framing[21:])))
    # one record whose two-byte length varint is negative (zigzag 129: -65), the bytes
    # after it as many as its magnitude would walk: the framing must still be refused
    negative = bytearray(make_batch([b"x"]))[:61] + b"\x81\x01" + bytes(64)
    struct.pack_into(">i", negative, 8, len(negative) - 12)
    struct.pack_into(">I", negative, 17, __import__("fslog").records.batch.crc32c(
        bytes(negative[21:])))
    cases = [
        (dict(topic="t", partition=0, records=bytes(bad_crc)), ErrorCode.corrupt_message),
        (dict(topic="t", partition=0, records=bytes(bad_framing)), ErrorCode.invalid_record),
        (dict(topic="t", partition=0, records=bytes(negative)), ErrorCode.invalid_record),
        (dict(topic="t", partition=0, records=good + good), ErrorCode.invalid_record),
        (dict(topic="t", partition=0, records=good[:40]), ErrorCode.corrupt_message),
        (dict(topic="t", partition=0, records=make_batch([b"x" * 3000])),
         ErrorCode.message_too_large),
        (dict(topic="t", partition=5, records=good), ErrorCode.unknown_topic_or_partition),
        (dict(topic="bad/name", partition=0, records=good), ErrorCode.invalid_topic_exception),
        (dict(topic="t", partition=0, records=good, acks=2), ErrorCode.invalid_required_acks),
        (dict(topic="t", partition=0, records=good, transactional_id="tx"),
         ErrorCode.transactional_id_authorization_failed),
    ]
    with Wire(serve.bootstrap) as w:
        for kw, code in cases:
            r = produce(w, kw.pop("topic"), kw.pop("partition"), kw.pop("records"), **kw)
            assert r.error_code == code, (kw, r)
        assert values(cli, "t") == []
        r = produce(w, "t", 1, good)
        assert (r.error_code, r.base_offset) == (ErrorCode.none, 0)
    assert values(cli, "t") == [b"a", b"b"]
    assert cli("verify").returncode == 0
    assert "transactions" in serve.stderr_text()


def test_offsets_assigned_by_the_log_and_log_append_time(cli, serve):  # noqa: F811
    cli.create("lat", "--config", "message.timestamp.type=LogAppendTime")
    cli.produce("lat", b"first\n")
    before = int(time.time() * 1000)
    with Wire(serve.bootstrap) as w:
        r = produce(w, "lat", 0, make_batch([b"x", b"y"], timestamp=5))
        assert (r.error_code, r.base_offset) == (ErrorCode.none, 1)
        assert r.log_append_time is not None
        assert r.log_append_time.timestamp() * 1000 >= before - 1000
    recs = cli.records("lat")
    assert [r.offset for r in recs] == [0, 1, 2]
    assert cli("verify").returncode == 0
    seg = cli.segments("lat")[0].read_bytes()
    from fslog.records import batch as rb
    h = rb.read_header(seg, rb.read_header(seg, 0).size)
    assert h.attributes & 0x08 and h.max_timestamp >= before - 1000 and h.base_offset == 1


# ---------------------------------------------------------------- idempotent producers
def test_idempotent_sequences_duplicates_gaps_epochs_and_restart(cli, serve):  # noqa: F811
    cli.create("idem")
    with Wire(serve.bootstrap) as w:
        r = w.call(22, 4, InitProducerIdRequest(transactional_id=None,
                                                transaction_timeout=60 * S,
                                                producer_id=-1, producer_epoch=-1))
        pid, epoch = r.producer_id, r.producer_epoch
        assert r.error_code == ErrorCode.none and pid >= 0 and epoch == 0
        b0 = make_batch([b"a", b"b"], pid, 0, 0)
        assert produce(w, "idem", 0, b0).base_offset == 0
        dup = produce(w, "idem", 0, b0)  # a retry of the same batch
        assert (dup.error_code, dup.base_offset) == (ErrorCode.none, 0)
        gap = produce(w, "idem", 0, make_batch([b"c"], pid, 0, 5))
        assert gap.error_code == ErrorCode.out_of_order_sequence_number
        assert produce(w, "idem", 0, make_batch([b"c"], pid, 0, 2)).base_offset == 2
        # a new epoch (KIP-360) starts again at sequence 0 and fences the old one
        r = w.call(22, 4, InitProducerIdRequest(transactional_id=None,
                                                transaction_timeout=60 * S,
                                                producer_id=pid, producer_epoch=0))
        assert (r.producer_id, r.producer_epoch) == (pid, 1)
        assert produce(w, "idem", 0, make_batch([b"d"], pid, 1, 0)).base_offset == 3
        old = produce(w, "idem", 0, make_batch([b"e"], pid, 0, 3))
        assert old.error_code == ErrorCode.invalid_producer_epoch
        other = w.call(22, 0, __import__("kio.schema.init_producer_id.v0.request",
                                         fromlist=["x"]).InitProducerIdRequest(
            transactional_id=None, transaction_timeout=60 * S))
        assert other.producer_id != pid
    serve.restart()  # the state comes back from the batches at the log tail
    with Wire(serve.bootstrap) as w:
        dup = produce(w, "idem", 0, make_batch([b"d"], pid, 1, 0))
        assert (dup.error_code, dup.base_offset) == (ErrorCode.none, 3)
        gap = produce(w, "idem", 0, make_batch([b"f"], pid, 1, 7))
        assert gap.error_code == ErrorCode.out_of_order_sequence_number
        assert produce(w, "idem", 0, make_batch([b"f"], pid, 1, 1)).base_offset == 4
        r = w.call(22, 4, InitProducerIdRequest(transactional_id=None,
                                                transaction_timeout=60 * S,
                                                producer_id=-1, producer_epoch=-1))
        assert r.producer_id not in (pid, other.producer_id)
        r = w.call(22, 4, InitProducerIdRequest(transactional_id="tx",
                                                transaction_timeout=60 * S,
                                                producer_id=-1, producer_epoch=-1))
        assert r.error_code == ErrorCode.transactional_id_authorization_failed
    assert values(cli, "idem") == [b"a", b"b", b"c", b"d", b"f"]


# ---------------------------------------------------------------- acks, order
def test_acks_zero_gets_no_response_and_pipelined_responses_come_in_order(cli, serve):  # noqa: F811
    cli.create("p")
    with Wire(serve.bootstrap) as w:
        w.send_raw(request_frame(0, 9, 500, produce_req("p", 0, make_batch([b"z0"]), acks=0)))
        for i in range(1, 6):
            w.send(0, 9, produce_req("p", 0, make_batch([b"z%d" % i]), acks=1 if i % 2 else -1))
        w.send(3, 12, metadata_req("p"))
        offsets = [w.recv().responses[0].partition_responses[0].base_offset for _ in range(5)]
        assert offsets == [1, 2, 3, 4, 5]
        assert w.recv().topics[0].name == "p"
    assert values(cli, "p") == [b"z%d" % i for i in range(6)]


# ---------------------------------------------------------------- Fetch
def test_fetch_long_poll_woken_by_fslog_produce_in_another_process(cli, serve):  # noqa: F811
    cli.create("live")
    cli.produce("live", b"old\n")
    with Wire(serve.bootstrap) as w, Wire(serve.bootstrap) as other:
        w.send(1, 12, fetch_req("live", 0, 1, max_wait_s=120))
        # the long poll holds neither the server nor other connections
        assert other.call(3, 12, metadata_req("live")).topics[0].name == "live"
        r = fetched(other.call(1, 12, fetch_req("live", 0, 0)))
        assert r.high_watermark == 1 and r.records
        time.sleep(0.2)
        cli.produce("live", b"new\n")
        # answered long before max_wait (120 s, over the socket timeout): woken by the append
        r = fetched(w.recv())
        assert r.error_code == ErrorCode.none and r.high_watermark == 2
        from fslog.records import batch as rb
        h = rb.read_header(r.records, 0)
        assert h.base_offset == 1 and rb.decode_records(r.records, 0, h)[0].value == b"new"


def test_fetch_long_poll_woken_by_a_produce_through_serve(cli, serve):  # noqa: F811
    cli.create("own")
    with Wire(serve.bootstrap) as w, Wire(serve.bootstrap) as other:
        for i in range(20):  # each long poll (120 s) ends with the next append
            w.send(1, 12, fetch_req("own", 0, i, max_wait_s=120))
            assert produce(other, "own", 0, make_batch([b"v%d" % i]), acks=1).base_offset == i
            r = fetched(w.recv())
            assert r.error_code == ErrorCode.none and r.high_watermark == i + 1
            assert r.records


def test_fetch_whole_batches_kip74_and_out_of_range(cli, serve):  # noqa: F811
    cli.create("f")
    cli.produce("f", b"".join(b"%05d\n" % i for i in range(100)))  # one batch
    cli.produce("f", b"tail\n")
    with Wire(serve.bootstrap) as w:
        r = fetched(w.call(1, 12, fetch_req("f", 0, 50, max_bytes=10)))  # smaller than a batch
        from fslog.records import batch as rb
        h = rb.read_header(r.records, 0)
        assert (h.base_offset, h.record_count, len(r.records)) == (0, 100, h.size)  # whole
        assert r.high_watermark == 101 and r.log_start_offset == 0
        r = fetched(w.call(1, 12, fetch_req("f", 0, 102)))
        assert r.error_code == ErrorCode.offset_out_of_range
        from kio.schema.fetch.v4 import request as F4
        r = fetched(w.call(1, 4, F4.FetchRequest(  # v4, read_committed: the same batches
            replica_id=-1, max_wait=datetime.timedelta(0), min_bytes=1, max_bytes=1 << 20,
            isolation_level=1, topics=(F4.FetchTopic(topic="f", partitions=(F4.FetchPartition(
                partition=0, fetch_offset=100, partition_max_bytes=1 << 20),)),))))
        h = rb.read_header(r.records, 0)
        assert (r.high_watermark, r.last_stable_offset, h.base_offset) == (101, 101, 100)
        assert r.aborted_transactions == ()
    # ListOffsets: earliest, latest, by time
    with Wire(serve.bootstrap) as w:
        def lo(ts):
            r = w.call(2, 7, LO.ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=(
                LO.ListOffsetsTopic(name="f", partitions=(LO.ListOffsetsPartition(
                    partition_index=0, timestamp=ts),)),)))
            p = r.topics[0].partitions[0]
            return p.error_code, p.offset
        assert lo(-2) == (ErrorCode.none, 0)
        assert lo(-1) == (ErrorCode.none, 101)
        assert lo(0) == (ErrorCode.none, 0)
        assert lo(int(time.time() * 1000) + 3600_000) == (ErrorCode.none, -1)


def test_list_offsets_by_time_finds_the_record_inside_a_compressed_batch(cli, serve):  # noqa: F811
    from confluent_kafka import Producer

    from fslog.records import batch as rb
    cli.create("zt")
    p = Producer({"bootstrap.servers": serve.bootstrap, "compression.type": "gzip",
                  "linger.ms": 1000, "acks": "all"})
    base = 1_700_000_000_000
    for i in range(10):  # one batch (linger), records 1 s apart, compressible values
        p.produce("zt", b"same value over and over %d " % i * 20, timestamp=base + i * 1000)
    assert p.flush(30) == 0
    seg = cli.partition_dir("zt") / "00000000000000000000.log"
    h = rb.read_header(seg.read_bytes(), 0)
    assert h.attributes & rb.COMPRESSION_MASK and h.record_count == 10  # one gzip batch
    with Wire(serve.bootstrap) as w:
        def lo(ts):
            r = w.call(2, 7, LO.ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=(
                LO.ListOffsetsTopic(name="zt", partitions=(LO.ListOffsetsPartition(
                    partition_index=0, timestamp=ts),)),)))
            q = r.topics[0].partitions[0]
            return q.error_code, q.offset, q.timestamp
        assert lo(base + 3500) == (ErrorCode.none, 4, base + 4000)  # inside the batch
        assert lo(base) == (ErrorCode.none, 0, base)
        assert lo(base + 9000) == (ErrorCode.none, 9, base + 9000)
        assert lo(base + 9001) == (ErrorCode.none, -1, -1)
        assert lo(-3) == (ErrorCode.none, 9, base + 9000)  # the record with the max timestamp


def test_a_topic_compression_type_recompresses_what_producers_send(cli, serve):  # noqa: F811
    from confluent_kafka import Producer

    from fslog.records import batch as rb
    from fslog.records import compression
    cli.create("tz", "--config", "compression.type=zstd")
    cli.create("tu", "--config", "compression.type=uncompressed")
    cli.create("tp")  # compression.type=producer: stored as sent
    sent = [b"a compressible value, again and again %03d " % i * 10 for i in range(50)]
    for codec in ("gzip", "none"):
        p = Producer({"bootstrap.servers": serve.bootstrap, "compression.type": codec,
                      "linger.ms": 200, "acks": "all"})
        for topic in ("tz", "tu", "tp"):
            for v in sent:
                p.produce(topic, v)
        assert p.flush(30) == 0

    def codecs(topic):
        data = b"".join(f.read_bytes() for f in cli.segments(topic))
        out, pos = set(), 0
        while pos < len(data):
            h = rb.read_header(data, pos)
            out.add(h.attributes & rb.COMPRESSION_MASK)
            pos += h.size
        return out
    assert codecs("tz") == {compression.ZSTD}
    assert codecs("tu") == {compression.NONE}
    assert codecs("tp") == {compression.GZIP, compression.NONE}
    for topic in ("tz", "tu", "tp"):  # the same records, in order, whatever the codec
        assert values(cli, topic) == sent + sent
    assert cli.run("verify").returncode == 0
    # a compressed batch whose records do not decompress: refused, nothing written
    bad = bytearray(make_batch([b"x" * 100]))
    bad[rb.HEADER_SIZE:] = b"\x1f\x8b not gzip at all"
    struct.pack_into(">i", bad, 8, len(bad) - rb.LOG_OVERHEAD)
    struct.pack_into(">h", bad, rb.CRC_START, compression.GZIP)
    struct.pack_into(">I", bad, 17, rb.crc32c_range(bad, rb.CRC_START, len(bad)))
    with Wire(serve.bootstrap) as w:
        r = produce(w, "tz", 0, bytes(bad))
        assert r.error_code == ErrorCode.invalid_record and r.base_offset == -1
    assert len(values(cli, "tz")) == 100


def test_a_batch_that_inflates_past_max_request_bytes_is_refused_not_held(cli):
    from fslog.records import batch as rb
    from fslog.records import compression
    cli.create("tb", "--config", "compression.type=gzip")
    s = start_serve(cli, "--max-request-bytes", str(1 << 20))
    try:
        # one record of 8 MiB of zeros, zstd: a few KiB on the wire, 8x the limit inside
        bomb = rb.compress_batch(bytearray(make_batch([b"\0" * (8 << 20)])), compression.ZSTD)
        assert len(bomb) < 64 << 10
        ok = rb.compress_batch(bytearray(make_batch([b"fine " * 100])), compression.ZSTD)
        with Wire(s.bootstrap, timeout=60) as w:
            r = produce(w, "tb", 0, bytes(bomb))
            assert r.error_code == ErrorCode.invalid_record and r.base_offset == -1
            assert "limit of 1,048,576 bytes" in (r.error_message or "")
            r = produce(w, "tb", 0, bytes(ok))  # the same connection serves on
            assert r.error_code == ErrorCode.none and r.base_offset == 0
        assert s.proc.poll() is None
    finally:
        s.kill()
    assert values(cli, "tb") == [b"fine " * 100]
    assert cli.run("verify").returncode == 0


# ---------------------------------------------------------------- bad frames, limits
def test_bad_frames_close_the_connection_with_one_line_and_the_server_stays_up(cli):
    s = start_serve(cli, "--max-request-bytes", "4096")
    try:
        cases = [
            (struct.pack(">i", 1 << 20) + b"x" * 100, "over --max-request-bytes=4096"),
            (struct.pack(">i", -5), "negative frame size"),
            (struct.pack(">i", 12) + struct.pack(">hhih", 999, 0, 1, -1) + b"\0\0", "unknown API key"),
            (struct.pack(">i", 10) + struct.pack(">hhih", 0, 99, 1, -1), "Produce v99"),
            (struct.pack(">i", 12) + struct.pack(">hhih", 3, 12, 1, -1) + b"\xff\xff", "Metadata v12"),
        ]
        for frame, line in cases:
            with Wire(s.bootstrap, timeout=30) as w:
                w.send_raw(frame)
                assert w.closed_by_server()
            s.wait_until(line)
        with Wire(s.bootstrap) as w:
            assert w.call(3, 12, metadata_req()).brokers[0].port == s.port
        assert s.proc.poll() is None
    finally:
        s.kill()


def test_max_connections_and_idle_connections(cli):
    # two servers: with one, a busy machine could let the first two connections idle out
    # before the third arrives, and the third would not be refused
    s = start_serve(cli, "--max-connections", "2")
    try:
        a, b = Wire(s.bootstrap, timeout=30), Wire(s.bootstrap, timeout=30)
        a.call(3, 12, metadata_req())
        b.call(3, 12, metadata_req())
        with Wire(s.bootstrap, timeout=30) as c:
            assert c.closed_by_server()
        s.wait_until("--max-connections=2 reached")
        a.close()
        b.close()
    finally:
        s.kill()
    s = start_serve(cli, "--connections-max-idle-ms", "300")
    try:
        a, b = Wire(s.bootstrap, timeout=30), Wire(s.bootstrap, timeout=30)
        a.call(3, 12, metadata_req())
        b.call(3, 12, metadata_req())
        assert a.closed_by_server() and b.closed_by_server()  # idle for 300 ms: closed
        s.wait_until("idle for more than 300 ms")
        a.close()
        b.close()
    finally:
        s.kill()


# ---------------------------------------------------------------- the command
def test_sigterm_answers_in_flight_fsyncs_and_exits_0(cli, serve):  # noqa: F811
    cli.create("s")
    with Wire(serve.bootstrap) as w:
        w.send(1, 12, fetch_req("s", 0, 0, max_wait_s=120))  # a long poll in flight
        produce(Wire(serve.bootstrap), "s", 0, make_batch([b"v"]), acks=1)
        time.sleep(0.1)
        r = fetched(w.recv())  # answered with the record
        w.send(1, 12, fetch_req("s", 0, 1, max_wait_s=120))
        time.sleep(0.2)
        serve.proc.send_signal(__import__("signal").SIGTERM)
        r = fetched(w.recv())  # the long poll ends at once, empty
        assert r.error_code == ErrorCode.none and not r.records
    assert serve.stop() == 0
    err = serve.stderr_text()
    assert "stopping (SIGTERM)" in err and "stopped" in err and "Traceback" not in err
    assert values(cli, "s") == [b"v"]


def test_second_serve_on_the_same_root_refuses_with_one_line(cli, serve):  # noqa: F811
    cp = cli("serve", "--listen", "127.0.0.1:0", check=1, timeout=60)
    lines = cp.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "already running" in lines[0] and str(serve.proc.pid) in lines[0]
    st = __import__("json").loads(cli("status", "--json").stdout)
    (server,) = st["servers"]
    assert server["pid"] == serve.proc.pid and server["address"] == serve.bootstrap
    wait_for(lambda: __import__("json").loads(cli("status", "--json").stdout)["servers"][0]
             .get("connections") is not None, what="server counters")
    out = cli("top", "--once", "--interval", "0.05").stdout.decode()
    assert serve.bootstrap in out and "REQUESTS/S" in out
    serve.stop()
    assert __import__("json").loads(cli("status", "--json").stdout)["servers"] == []


def test_non_loopback_needs_insecure(cli):
    cp = cli("serve", "--listen", "0.0.0.0:0", check=2)
    assert len(cp.stderr.decode().strip().splitlines()) == 1
    assert "--insecure" in cp.stderr.decode()
    assert not (cli.root / "serve").exists()
