"""The replication pieces of ``fslog serve``: OffsetForLeaderEpoch answered from the
leader-epoch checkpoint, and serve promoting a follower root it starts on."""

from __future__ import annotations

import json

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.offset_for_leader_epoch.v2 import request as v2
from kio.schema.offset_for_leader_epoch.v4 import request as v4
from serve_fixtures import start_serve

import fslog
from fslog.replication.wire import Connection


def _ask(port: int, mod, topic: str, epochs: list[tuple[int, int]]):
    conn = Connection("127.0.0.1", port)
    try:
        extra = {"replica_id": -1} if mod is v4 else {}
        req = mod.OffsetForLeaderEpochRequest(**extra, topics=(
            mod.OffsetForLeaderTopic(topic=topic, partitions=tuple(
                mod.OffsetForLeaderPartition(partition=p, leader_epoch=e) for p, e in epochs)),))
        resp = conn.request(req)
    finally:
        conn.close()
    return [(r.partition, r.error_code, r.leader_epoch, r.end_offset)
            for t in resp.topics for r in t.partitions]


def test_serve_promotes_a_follower_root_and_answers_offset_for_leader_epoch(cli, tmp_path):
    leader = tmp_path / "leader"
    cli("--root", leader, "topic", "create", "t")
    cli("--root", leader, "produce", "t", input=b"a\nb\nc\n")
    cli("replicate", "--from", leader, "--once")        # the test root follows
    cli("produce", "t", input=b"x\n", check=1)           # and refuses producers
    srv = start_serve(cli)
    try:
        srv.wait_until("promoted to leader (leader epoch 1 on 1 partitions)")
        cli("produce", "t", input=b"d\ne\n")              # a leader again: epoch 1 from 3
        assert _ask(srv.port, v4, "t", [(0, 0), (0, 1), (0, 5), (1, 0)]) == [
            (0, ErrorCode.none, 0, 3), (0, ErrorCode.none, 1, 5), (0, ErrorCode.none, 1, 5),
            (1, ErrorCode.unknown_topic_or_partition, -1, -1)]
        assert _ask(srv.port, v2, "nope", [(0, 0)]) == [
            (0, ErrorCode.unknown_topic_or_partition, -1, -1)]
    finally:
        srv.stop()


def test_a_follower_of_serve_copies_byte_for_byte_and_follows(cli, tmp_path):
    """``fslog replicate --from HOST:PORT``: Fetch with a replica id, the same bytes at the
    same offsets (the concatenated segments are identical), then following new appends."""
    import signal

    from conftest import wait_for

    cli("topic", "create", "t", "--partitions", "2", "--config", "segment.bytes=4096")
    cli("produce", "t", input=b"".join(b"r-%05d\n" % i for i in range(5000)))
    srv = start_serve(cli)
    b = tmp_path / "follower"
    try:
        f = cli.popen("--root", b, "replicate", "--from", srv.bootstrap)

        def log_bytes(root, p):
            d = root / "topics" / "t" / f"t-{p}"
            if not d.is_dir():
                return None
            return b"".join(x.read_bytes() for x in sorted(d.glob("*.log")))

        def same():
            return all(log_bytes(cli.root, p) == log_bytes(b, p) for p in range(2))
        wait_for(same, timeout=60, interval=0.1, what="the first copy")
        cli("produce", "t", input=b"".join(b"s-%05d\n" % i for i in range(3000)))
        wait_for(same, timeout=60, interval=0.1, what="the follower to follow")
        f.send_signal(signal.SIGTERM)
        assert f.wait(timeout=30) == 0
        # the topic's config came with DescribeConfigs: the follower rolled where the
        # leader did, so each segment is identical too
        for p in range(2):
            la = sorted(x.name for x in (cli.root / "topics" / "t" / f"t-{p}").glob("*.log"))
            assert la == sorted(x.name for x in (b / "topics" / "t" / f"t-{p}").glob("*.log"))
            assert len(la) > 2
        assert fslog.Log(str(b)).topic("t").config.overrides == {"segment.bytes": 4096}
        cli("--root", b, "verify")
        assert cli("--root", b, "consume", "t").stdout == cli("consume", "t").stdout
    finally:
        srv.stop()


def test_acks_all_waits_for_min_insync_replicas(cli, tmp_path):
    """min.insync.replicas=2: acks=all is refused with NOT_ENOUGH_REPLICAS while no follower
    is in sync, and acknowledged once a follower fetches: the record is then on it."""
    import signal

    import kafka
    from conftest import wait_for
    from kafka.errors import NotEnoughReplicasError

    cli("topic", "create", "t", "--config", "min.insync.replicas=2")
    srv = start_serve(cli)
    b = tmp_path / "follower"
    f = None
    try:
        p = kafka.KafkaProducer(bootstrap_servers=srv.bootstrap, acks="all", retries=0)
        with pytest.raises(NotEnoughReplicasError):
            p.send("t", b"refused").get(30)
        assert cli("consume", "t").stdout == b""          # nothing was appended
        f = cli.popen("--root", b, "replicate", "--from", srv.bootstrap)
        # in sync once the follower fetched from the log end
        wait_for(lambda: (b / "topics" / "t").is_dir(), timeout=60, what="the follower")
        deadline_ok = False
        for _ in range(60):
            try:
                meta = p.send("t", b"kept").get(30)
                deadline_ok = True
                break
            except NotEnoughReplicasError:
                import time
                time.sleep(0.25)
        assert deadline_ok
        # acknowledged means: on the follower too (it fsyncs before it fetches further)
        got = cli("--root", b, "consume", "t", "--format", "%o %s").stdout
        assert f"{meta.offset} kept".encode() in got.splitlines()
        p.close()

        def shown():
            st = json.loads(cli("status", "--json").stdout)
            fs = [x for sv in st["servers"] for x in sv["followers"]]
            return fs and fs[0]["replica_id"] == 1 and fs[0]["in_sync"] and \
                fs[0]["lag_records"] == 0 and fs[0]["topic"] == "t"
        wait_for(shown, timeout=30, interval=0.2, what="fslog status to show the follower")
        top = json.loads(cli("top", "--once", "--json", "--interval", "0.1").stdout)
        assert [x["replica_id"] for sv in top["servers"] for x in sv["followers"]] == [1]
        f.send_signal(signal.SIGTERM)
        assert f.wait(timeout=30) == 0
    finally:
        srv.stop()
