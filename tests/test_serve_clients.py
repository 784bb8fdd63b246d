"""fslog serve with real Kafka clients, unmodified: kafka-python, confluent-kafka
(librdkafka), aiokafka, kcat and kafkajs.

For each client: metadata; keyed produce lands where murmur2 puts the key (as
``fslog produce -K :`` does); consume from the beginning and from an offset in the
middle of a batch; idempotent produce (the batches carry a producer id and sequences).
kcat and kafkajs: a test that cannot find them is skipped outside CI and fails in CI
(``CI`` set: ``.ci/run`` installs both).

The tests are about the records clients send and read, not the server's start: they
share one root and one ``fslog serve`` per module (per pytest-xdist worker), each test
on topics of its own (named after the client).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import typing
from pathlib import Path

import pytest
from conftest import CLI
from serve_fixtures import in_ci, start_serve

from fslog.records.partitioner import partition_for_key

KEYS = [f"u-{i}" for i in range(24)]
JS_DIR = Path(__file__).parent / "js"


def _need(tool_ok: bool, what: str) -> None:
    if not tool_ok:
        if in_ci():
            pytest.fail(f"{what} is missing, and CI must run it (.ci/run installs it)")
        pytest.skip(f"{what} not found (.ci/run installs it)")


# ---------------------------------------------------------------- one adapter per client
class Client:
    """One Kafka client. ``records(topic, partition, offset, count)``: what it reads from
    ``offset`` on (at most ``count``), each record as (offset, key, value, headers,
    timestamp): key None for a null key, headers a tuple of (str, bytes), timestamp in
    ms. ``consume``: (offset, key, value) of the same."""

    def records(self, topic, partition, offset, count) -> list[tuple]:
        raise NotImplementedError

    def consume(self, topic, partition, offset, count):
        return [r[:3] for r in self.records(topic, partition, offset, count)]


class KafkaPython(Client):
    name = "kafka-python"

    def __init__(self, bootstrap):
        import kafka
        self.kafka = kafka
        self.bs = bootstrap

    def metadata(self, topic):
        c = self.kafka.KafkaConsumer(bootstrap_servers=self.bs)
        try:
            c.topics()
            return sorted(c.partitions_for_topic(topic) or ())
        finally:
            c.close()

    def produce(self, topic, pairs, idempotent=True):
        p = self.kafka.KafkaProducer(bootstrap_servers=self.bs, acks="all",
                                     enable_idempotence=idempotent)
        futs = [p.send(topic, key=k.encode(), value=v.encode()) for k, v in pairs]
        p.flush(30)
        out = [(f.get(30).partition, f.get(30).offset) for f in futs]
        p.close()
        return out

    def records(self, topic, partition, offset, count):
        tp = self.kafka.TopicPartition(topic, partition)
        c = self.kafka.KafkaConsumer(bootstrap_servers=self.bs, enable_auto_commit=False)
        try:
            c.assign([tp])
            c.seek(tp, offset)
            got = []
            deadline = time.monotonic() + 30
            while len(got) < count and time.monotonic() < deadline:
                for recs in c.poll(500).values():
                    got += [(m.offset, m.key, m.value, tuple(m.headers or ()), m.timestamp)
                            for m in recs]
            return got[:count]
        finally:
            c.close()


class Confluent(Client):
    name = "confluent-kafka"

    def __init__(self, bootstrap):
        import confluent_kafka
        self.ck = confluent_kafka
        self.bs = bootstrap

    def metadata(self, topic):
        from confluent_kafka.admin import AdminClient
        md = AdminClient({"bootstrap.servers": self.bs}).list_topics(topic, timeout=20)
        return sorted(md.topics[topic].partitions)

    def produce(self, topic, pairs, idempotent=True):
        p = self.ck.Producer({"bootstrap.servers": self.bs, "partitioner": "murmur2_random",
                              "enable.idempotence": idempotent, "acks": "all",
                              "linger.ms": 5})
        out = {}
        for k, v in pairs:
            p.produce(topic, key=k.encode(), value=v.encode(),
                      on_delivery=lambda e, m: out.__setitem__(m.key(), (e, m.partition(),
                                                                          m.offset())))
        assert p.flush(30) == 0
        assert all(e is None for e, _p, _o in out.values()), out
        return [out[k.encode()][1:] for k, _v in pairs]

    def records(self, topic, partition, offset, count):
        c = self.ck.Consumer({"bootstrap.servers": self.bs, "group.id": "unused",
                              "enable.auto.commit": False})
        try:
            c.assign([self.ck.TopicPartition(topic, partition, offset)])
            got = []
            deadline = time.monotonic() + 30
            while len(got) < count and time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is not None and not m.error():
                    got.append((m.offset(), m.key(), m.value(), tuple(m.headers() or ()),
                                m.timestamp()[1]))
            return got
        finally:
            c.close()


class AioKafka(Client):
    name = "aiokafka"

    def __init__(self, bootstrap):
        import aiokafka
        self.aio = aiokafka
        self.bs = bootstrap

    def metadata(self, topic):
        async def go():
            from aiokafka.admin import AIOKafkaAdminClient
            a = AIOKafkaAdminClient(bootstrap_servers=self.bs)
            await a.start()
            try:
                (t,) = await a.describe_topics([topic])
                return sorted(p["partition"] for p in t["partitions"])
            finally:
                await a.close()
        return asyncio.run(go())

    def produce(self, topic, pairs, idempotent=True):
        async def go():
            p = self.aio.AIOKafkaProducer(bootstrap_servers=self.bs,
                                          enable_idempotence=idempotent, acks="all")
            await p.start()
            try:
                futs = [await p.send(topic, key=k.encode(), value=v.encode()) for k, v in pairs]
                return [((md := await f).partition, md.offset) for f in futs]
            finally:
                await p.stop()
        return asyncio.run(go())

    def records(self, topic, partition, offset, count):
        async def go():
            c = self.aio.AIOKafkaConsumer(bootstrap_servers=self.bs, enable_auto_commit=False)
            await c.start()
            try:
                tp = self.aio.TopicPartition(topic, partition)
                c.assign([tp])
                c.seek(tp, offset)
                got = []
                deadline = time.monotonic() + 30
                while len(got) < count and time.monotonic() < deadline:
                    for recs in (await c.getmany(timeout_ms=500)).values():
                        got += [(m.offset, m.key, m.value, tuple(m.headers or ()),
                                 m.timestamp) for m in recs]
                return got[:count]
            finally:
                await c.stop()
        return asyncio.run(go())


class Kcat(Client):
    name = "kcat"

    def __init__(self, bootstrap):
        self.exe = shutil.which("kcat") or shutil.which("kafkacat")
        _need(self.exe is not None, "kcat")
        self.bs = bootstrap

    def _run(self, args, input=b""):
        cp = subprocess.run([self.exe, "-b", self.bs, *args], input=input,
                            capture_output=True, timeout=60)
        assert cp.returncode == 0, cp.stderr.decode(errors="replace")
        return cp.stdout

    def metadata(self, topic):
        md = json.loads(self._run(["-L", "-J", "-t", topic]))
        return sorted(p["partition"] for t in md["topics"] if t["topic"] == topic
                      for p in t["partitions"])

    def produce(self, topic, pairs, idempotent=True):
        data = "".join(f"{k}:{v}\n" for k, v in pairs).encode()
        args = ["-P", "-t", topic, "-K", ":", "-X", "partitioner=murmur2_random"]
        if idempotent:
            args += ["-X", "enable.idempotence=true"]
        self._run(args, data)
        return None  # kcat does not report offsets

    def records(self, topic, partition, offset, count):
        """(kcat prints a record a line: keys, values and headers here hold no tab, newline,
        comma or equals sign; an empty key reads as a null one)"""
        out = self._run(["-C", "-t", topic, "-p", str(partition), "-o", str(offset),
                         "-c", str(count), "-e", "-f", "%o\t%k\t%s\t%T\t%h\n"])
        got = []
        for line in out.decode().splitlines():
            o, k, v, ts, hs = line.split("\t")
            headers = tuple((hk, hv.encode()) for hk, _eq, hv in
                            (h.partition("=") for h in hs.split(",") if h))
            got.append((int(o), k.encode() or None, v.encode(), headers, int(ts)))
        return got


class KafkaJS(Client):
    """kafkajs through one ``node kafkajs_client.js --lines`` process per bootstrap
    address (node and kafkajs start once for a module's commands); ``close_all()`` at the
    module's end."""
    name = "kafkajs"
    _procs: dict[str, tuple[subprocess.Popen, typing.IO[bytes]]] = {}

    def __init__(self, bootstrap):
        node = shutil.which("node")
        _need(node is not None and (JS_DIR / "node_modules" / "kafkajs").is_dir(),
              "kafkajs (node and tests/js/node_modules/kafkajs)")
        self.node = node
        self.bs = bootstrap

    def _proc(self) -> tuple[subprocess.Popen, typing.IO[bytes]]:
        got = self._procs.get(self.bs)
        if got is None or got[0].poll() is not None:
            err = tempfile.TemporaryFile()
            p = subprocess.Popen([self.node, str(JS_DIR / "kafkajs_client.js"), "--lines"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
            got = self._procs[self.bs] = (p, err)
        return got

    def _run(self, cmd: dict, timeout: float = 120):
        p, err = self._proc()
        p.stdin.write(json.dumps(dict(cmd, bootstrap=self.bs)).encode() + b"\n")
        p.stdin.flush()
        waiting = select.poll()  # (not select(): a worker may hold descriptors past 1023)
        waiting.register(p.stdout, select.POLLIN)
        if not waiting.poll(timeout * 1000):  # a guard against a hang
            p.kill()
            raise AssertionError(f"kafkajs gave no answer to {cmd['op']} in {timeout} s")
        line = p.stdout.readline()
        if not line:
            err.seek(0)
            raise AssertionError(f"kafkajs ended (exit {p.wait()}) during {cmd['op']}: "
                                 f"{err.read().decode(errors='replace')}")
        out = json.loads(line)
        assert "error" not in out, out["error"]
        return out["ok"]

    @classmethod
    def close_all(cls) -> None:
        for p, err in cls._procs.values():
            err.close()
            if p.poll() is None:
                p.stdin.close()  # end of input: it exits
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        cls._procs.clear()

    def metadata(self, topic):
        (t,) = self._run({"op": "metadata", "topics": [topic]})
        return t["partitions"]

    def produce(self, topic, pairs, idempotent=True):
        self._run({"op": "produce", "topic": topic, "records": pairs, "idempotent": idempotent})
        return None

    def records(self, topic, partition, offset, count):
        """(kafkajs gives headers as an object: a key's values together, in order)"""
        from fslog.broker.versions import API_VERSIONS
        if 11 not in API_VERSIONS:  # kafkajs only consumes as a group member
            pytest.skip("kafkajs consumes through a consumer group: needs the group "
                        "coordinator (JoinGroup) in fslog serve")
        got = self._run({"op": "consume", "topic": topic, "partition": partition,
                         "offset": offset, "count": count, "timeout_ms": 60000})
        return [(r["offset"], r["key"] and r["key"].encode(), r["value"].encode(),
                 tuple((k, base64.b64decode(v)) for k, v in r["headers"]), int(r["timestamp"]))
                for r in got if r["partition"] == partition and r["offset"] >= offset][:count]


CLIENTS = [KafkaPython, Confluent, AioKafka, Kcat, KafkaJS]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The module's root and its ``fslog serve`` (killed at the module's end)."""
    shared = CLI(tmp_path_factory.mktemp("serve-clients") / "root")
    # no group here is about its first join's wait for more members (kafkajs reads
    # through a group of its own)
    server = start_serve(shared, "--group-initial-rebalance-delay-ms", "0")
    yield shared, server
    KafkaJS.close_all()
    server.kill()
    shared.cleanup()


@pytest.fixture
def cli(served):
    """The module's root, in place of conftest's root per test."""
    return served[0]


@pytest.fixture(params=CLIENTS, ids=[c.name for c in CLIENTS])
def client(request, served):
    return request.param(served[1].bootstrap)


def topic(name: str, client) -> str:
    """A topic of this test's own on the shared root."""
    return f"{name}-{client.name}"


# ---------------------------------------------------------------- the tests
def test_metadata(cli, client):
    orders = topic("orders", client)
    cli.create(orders, "--partitions", "3")
    assert client.metadata(orders) == [0, 1, 2]


def test_keyed_produce_lands_where_murmur2_puts_it(cli, client):
    keyed = topic("keyed", client)
    cli.create(keyed, "--partitions", "4")
    pairs = [(k, f"value-{k}") for k in KEYS]
    acked = client.produce(keyed, pairs)
    recs = cli.records(keyed)
    assert sorted(r.value for r in recs) == sorted(v.encode() for _k, v in pairs)
    for r in recs:
        assert r.partition == partition_for_key(r.key, 4), r
    if acked is not None:
        where = {(r.partition, r.offset): r.key.decode() for r in recs}
        assert [where[a] for a in acked] == [k for k, _v in pairs]
    # fslog produce -K : puts the same keys in the same partitions
    cli.produce(keyed, "".join(f"{k}:cli\n" for k in KEYS).encode(), "--key-separator", ":")
    by_key: dict[bytes, set] = {}
    for r in cli.records(keyed):
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(ps) == 1 for ps in by_key.values()), by_key


def test_consume_from_the_beginning_and_from_the_middle_of_a_batch(cli, client):
    events = topic("events", client)
    cli.create(events)
    cli.produce(events, b"".join(b"e%d\n" % i for i in range(10)))  # one batch: 0..9
    cli.produce(events, b"".join(b"f%d\n" % i for i in range(5)))   # another: 10..14
    got = client.consume(events, 0, 0, 15)
    assert [(o, v) for o, _k, v in got] == \
        [(i, b"e%d" % i) for i in range(10)] + [(10 + i, b"f%d" % i) for i in range(5)]
    got = client.consume(events, 0, 6, 6)
    assert [(o, v) for o, _k, v in got] == \
        [(6, b"e6"), (7, b"e7"), (8, b"e8"), (9, b"e9"), (10, b"f0"), (11, b"f1")]


def test_idempotent_produce_carries_producer_ids_and_sequences(cli, client):
    idem = topic("idem", client)
    cli.create(idem)
    client.produce(idem, [("k", f"v{i}") for i in range(20)], idempotent=True)
    from fslog.records import batch as rb
    seg = cli.segments(idem)[0].read_bytes()
    pos, heads = 0, []
    while pos < len(seg):
        h = rb.read_header(seg, pos)
        heads.append(h)
        pos += h.size
    assert all(h.producer_id >= 0 and h.base_sequence >= 0 for h in heads), heads
    # sequences continue from batch to batch (one producer, one epoch)
    seq = 0
    for h in heads:
        assert h.base_sequence == seq
        seq += h.record_count
    assert [r.value for r in cli.records(idem)] == [f"v{i}".encode() for i in range(20)]
    assert cli("verify").returncode == 0


def test_records_produced_through_serve_read_byte_for_byte_by_fslog_consume(cli, client):
    cross = topic("cross", client)
    values = [b"plain", b"with spaces and \xc3\xa9", b"{\"json\": [1, 2]}", b"x" * 3000]
    pairs = [(f"k{i}", v.decode()) for i, v in enumerate(values)]
    cli.create(cross)
    client.produce(cross, pairs)
    out = cli("consume", cross).stdout
    assert out == b"".join(v + b"\n" for v in values)


def test_records_produced_by_fslog_read_by_the_client(cli, client):
    fromcli = topic("fromcli", client)
    cli.create(fromcli)
    lines = [b"alpha", b"beta \xc3\xa9", b"", b"gamma:delta"]
    cli.produce(fromcli, b"".join(v + b"\n" for v in lines))
    got = client.consume(fromcli, 0, 0, len(lines))
    assert [v for _o, _k, v in got] == lines


def test_kcat_found_when_ci():
    if os.environ.get("CI"):
        assert shutil.which("kcat") or shutil.which("kafkacat")
