"""fslog serve under hostile input and crashes: random and mutated frames of every API
it answers (hypothesis) never take it down nor reach the log as garbage; kill -9 during
acks=all produce loses no acknowledged record and leaves a log that verifies."""

from __future__ import annotations

import datetime
import random
import socket
import struct
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_wire import Wire, make_batch, request_frame
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.fetch.v12 import request as F
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.list_offsets.v7 import request as LO
from kio.schema.metadata.v12 import request as M
from kio.schema.produce.v9 import request as P
from serve_fixtures import start_serve

S = datetime.timedelta(seconds=1)
GOOD_VALUES = [b"fuzz-a", b"fuzz-b", b"fuzz-c"]


def templates() -> list[bytes]:
    """One valid request frame per API fslog serve answers."""
    batch = make_batch(GOOD_VALUES)
    return [
        request_frame(18, 3, 1, ApiVersionsRequest(client_software_name="f",
                                                    client_software_version="1")),
        request_frame(3, 12, 2, M.MetadataRequest(
            topics=(M.MetadataRequestTopic(name="fz", topic_id=None),),
            allow_auto_topic_creation=True, include_topic_authorized_operations=False)),
        request_frame(0, 9, 3, P.ProduceRequest(
            transactional_id=None, acks=1, timeout=30 * S, topic_data=(P.TopicProduceData(
                name="fz", partition_data=(P.PartitionProduceData(index=0, records=batch),)),))),
        request_frame(1, 12, 4, F.FetchRequest(
            max_wait=datetime.timedelta(milliseconds=10), min_bytes=1, max_bytes=1 << 20,
            isolation_level=0, session_id=0, session_epoch=-1, topics=(F.FetchTopic(
                topic="fz", partitions=(F.FetchPartition(partition=0, fetch_offset=0,
                                                         partition_max_bytes=1 << 20),)),),
            forgotten_topics_data=(), rack_id="")),
        request_frame(2, 7, 5, LO.ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=(
            LO.ListOffsetsTopic(name="fz", partitions=(LO.ListOffsetsPartition(
                partition_index=0, timestamp=-1),)),))),
        request_frame(22, 4, 6, InitProducerIdRequest(transactional_id=None,
                                                      transaction_timeout=60 * S,
                                                      producer_id=-1, producer_epoch=-1)),
    ]


def _exchange(bootstrap: str, data: bytes) -> None:
    """Send ``data`` and the end of input, read whatever comes back until the server
    closes (or for a moment, 0.3 s), close."""
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # the server reads to the end and closes: no wait
        s.settimeout(0.3)
        try:
            while s.recv(65536):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        s.close()


@st.composite
def hostile_frames(draw) -> bytes:
    kind = draw(st.sampled_from(["random", "mutated", "truncated", "resized"]))
    if kind == "random":
        body = draw(st.binary(min_size=0, max_size=300))
        return struct.pack(">i", len(body)) + body
    frame = bytearray(draw(st.sampled_from(TEMPLATES)))
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(4, len(frame) - 1))
            frame[i] = draw(st.integers(0, 255))
        return bytes(frame)
    if kind == "truncated":
        cut = draw(st.integers(4, len(frame) - 1))
        body = frame[4:cut]
        return struct.pack(">i", len(body)) + bytes(body)
    size = draw(st.integers(-(1 << 31), (1 << 31) - 1))
    return struct.pack(">i", size) + bytes(frame[4:])


TEMPLATES = templates()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from conftest import CLI
    cli = CLI(tmp_path_factory.mktemp("fuzz") / "root")
    cli.create("fz")
    s = start_serve(cli, "--max-request-bytes", "65536")
    yield cli, s
    s.kill()
    cli.cleanup()


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frame=hostile_frames())
def test_hostile_frames_never_take_the_server_down(fuzz_server, frame):
    cli, s = fuzz_server
    _exchange(s.bootstrap, frame)
    assert s.proc.poll() is None, s.stderr_text()


def test_after_the_fuzzing_the_server_serves_and_the_log_verifies(fuzz_server):
    # (runs after the fuzz test in file order; on its own it checks a fresh server)
    cli, s = fuzz_server
    rnd = random.Random(12)
    for _ in range(50):  # and a burst of garbage on one connection while another works
        _exchange(s.bootstrap, bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 64))))
    with Wire(s.bootstrap) as w:
        r = w.call(3, 12, M.MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                            include_topic_authorized_operations=False))
        assert any(t.name == "fz" for t in r.topics)
    assert s.proc.poll() is None
    err = s.stderr_text()
    assert "Traceback" not in err, err[max(0, err.find("Traceback") - 400):][:4000]
    assert cli("verify").returncode == 0
    for rec in cli.records("fz"):  # whatever got in is a whole batch someone sent
        assert rec.value in GOOD_VALUES


# ---------------------------------------------------------------- kill -9
def test_kill_9_during_acks_all_produce_loses_no_acknowledged_record(cli):
    confluent_kafka = pytest.importorskip("confluent_kafka")
    cli.create("crash", "--partitions", "2")
    s = start_serve(cli)
    acked: list[bytes] = []
    failed: list[bytes] = []
    lock = threading.Lock()

    def on_delivery(err, msg):
        with lock:
            (failed if err is not None else acked).append(msg.value())

    p = confluent_kafka.Producer({"bootstrap.servers": s.bootstrap, "acks": "all",
                                  "enable.idempotence": True, "linger.ms": 2,
                                  "message.timeout.ms": 5000, "partitioner": "murmur2_random",
                                  "reconnect.backoff.max.ms": 200})
    i = 0
    deadline = time.monotonic() + 60
    while len(acked) < 3000 and time.monotonic() < deadline:
        p.produce("crash", key=b"k%d" % (i % 50), value=b"rec-%08d" % i, on_delivery=on_delivery)
        i += 1
        if i % 200 == 0:
            p.poll(0.01)
    assert len(acked) >= 3000, "the producer did not get going"
    s.proc.kill()  # kill -9 in the middle of the stream
    s.proc.wait(timeout=30)
    sent_before_kill = i
    for _ in range(100):
        p.produce("crash", key=b"late", value=b"late-%d" % i, on_delivery=on_delivery)
        i += 1
    p.flush(15)
    with lock:
        acked_now = set(acked)
    s.start()  # restart on the same root
    try:
        assert cli("verify").returncode == 0
        stored = [r.value for r in cli.records("crash")]
        assert acked_now <= set(stored), sorted(acked_now - set(stored))[:5]
        assert len(stored) == len(set(stored))  # nothing written twice
        assert sent_before_kill > 0
    finally:
        s.kill()
