"""What Kafka clients see of a copy. The five clients of ``test_serve_clients.py``
(kafka-python, confluent-kafka, aiokafka, kcat, kafkajs) read a topic through ``fslog
serve`` on two copies of a leader's root:

- a follower root: ``fslog replicate --from HOST:PORT`` of the leader's ``fslog serve``;
- a mirror's target: ``fslog mirror --to`` an ``fslog serve`` on another root;

and each gets exactly the leader's records, partition by partition: offsets, keys
(null ones too), values, headers (a key repeated, in order) and timestamps. The topic has
batches of fslog's producer and a gzip batch of librdkafka's.
"""

from __future__ import annotations

import json

import pytest
from conftest import CLI
from serve_fixtures import start_serve
from test_serve_clients import CLIENTS, KafkaJS

TOPIC = "copied"
PARTITIONS = 2
T0 = 1_700_000_000_000  # timestamps given by the producers (CreateTime)


def _fill(leader: CLI) -> None:
    """Records with and without keys and headers, in both partitions, from fslog's
    producer. Values, keys and headers hold no tab, newline, comma or equals sign (kcat
    prints them on one line)."""
    log = leader.log()
    log.create_topic(TOPIC, partitions=PARTITIONS)
    with log.producer(TOPIC) as p:
        for i in range(40):
            p.send(f"value-{i}-é".encode(), key=None if i % 7 == 0 else f"key-{i % 5}".encode(),
                   headers=[("trace", f"t{i}".encode()), ("hop", b"a"), ("hop", b"b")]
                   if i % 3 else None, partition=i % PARTITIONS, timestamp=T0 + i * 1000)


def _fill_from_librdkafka(bootstrap: str) -> None:
    """More, through the leader's server: librdkafka's batches, gzip-compressed (kafkajs
    reads no other codec without plugins)."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": "gzip", "linger.ms": 50,
                  "acks": "all"})
    for i in range(10):
        p.produce(TOPIC, value=f"rd-{i}".encode(), key=f"rk-{i}".encode() if i % 4 else None,
                  headers=[("from", b"librdkafka"), ("n", str(i).encode())],
                  partition=i % PARTITIONS, timestamp=T0 + 100_000 + i)
    assert p.flush(60) == 0


def _expected(root) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    r = CLI(root).log().reader(TOPIC)
    try:
        for x in r:
            out.setdefault(x.partition, []).append(
                (x.offset, x.key, x.value, tuple(x.headers), x.timestamp))
    finally:
        r.close()
    return out


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """{"leader": records per partition, "follower": bootstrap, "mirror": bootstrap}."""
    base = tmp_path_factory.mktemp("copies")
    leader, follower, remote = CLI(base / "leader"), CLI(base / "follower"), CLI(base / "remote")
    servers = []
    try:
        _fill(leader)
        src = start_serve(leader)
        servers.append(src)
        _fill_from_librdkafka(src.bootstrap)
        want = _expected(leader.root)
        assert sorted(want) == list(range(PARTITIONS)) and sum(map(len, want.values())) == 50

        follower("replicate", "--from", src.bootstrap, "--once", "--topics", TOPIC)
        remote("topic", "create", TOPIC, "--partitions", str(PARTITIONS))
        # kafkajs reads through a group of its own: no wait for more members at its join
        to = start_serve(remote, "--group-initial-rebalance-delay-ms", "0")
        servers.append(to)
        sent = json.loads(leader("mirror", TOPIC, "--to", to.bootstrap, "--json").stdout)
        assert sent["records_sent"] == 50
        assert _expected(follower.root) == want  # the files, before any client looks
        servers.append(start_serve(follower, "--group-initial-rebalance-delay-ms", "0"))
        yield {"leader": want, "follower": servers[-1].bootstrap, "mirror": to.bootstrap}
    finally:
        KafkaJS.close_all()
        for s in servers:
            s.kill()
        for c in (leader, follower, remote):
            c.cleanup()


@pytest.mark.parametrize("copy", ["follower", "mirror"])
@pytest.mark.parametrize("client_cls", CLIENTS, ids=[c.name for c in CLIENTS])
def test_each_client_reads_exactly_the_leaders_records_from_a_copy(copies, client_cls, copy):
    client = client_cls(copies[copy])
    for p, want in copies["leader"].items():
        got = client.records(TOPIC, p, 0, len(want))
        assert got == want, f"{client_cls.name} reading partition {p} of the {copy}"
