"""The replication pieces of ``fslog serve``: OffsetForLeaderEpoch answered from the
leader-epoch checkpoint, and serve promoting a follower root it starts on."""

from __future__ import annotations

import json

import pytest

import fslog

from kio.schema.errors import ErrorCode
from kio.schema.offset_for_leader_epoch.v2 import request as v2
from kio.schema.offset_for_leader_epoch.v4 import request as v4

from fslog.replication.wire import Connection
from serve_fixtures import start_serve


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
    from kafka.errors import NotEnoughReplicasError

    from conftest import wait_for

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


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_leader_killed_during_acks_all_loses_no_acknowledged_record(cli, tmp_path):
    """Leader A (fslog serve, min.insync.replicas=2) and follower B (fslog replicate over
    the network); a kafka-python producer with acks=all while A is killed -9 at a random
    moment. Every acknowledged record is on B; B, served, is promoted and takes more
    records; A, restarted as a follower of B, truncates what it never replicated and ends
    with B's log, byte for byte. FSLOG_REPLICATION_TRIALS sets the number of trials."""
    import os
    import random
    import signal
    import threading
    import time

    import kafka

    from conftest import wait_for

    trials = int(os.environ.get("FSLOG_REPLICATION_TRIALS", "2"))
    rng = random.Random(1313)
    for trial in range(trials):
        a, b = tmp_path / f"a{trial}", tmp_path / f"b{trial}"
        cli("--root", a, "topic", "create", "t", "--config", "min.insync.replicas=2",
            "--config", "segment.bytes=8192")
        srv_a = start_serve(cli, env={"FSLOG_ROOT": str(a)})
        f = cli.popen("--root", b, "replicate", "--from", srv_a.bootstrap)
        acked: list[tuple[int, bytes]] = []
        stop = threading.Event()

        def produce(bootstrap):
            p = kafka.KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0,
                                    linger_ms=1, max_block_ms=5000, request_timeout_ms=5000)
            i = 0
            try:
                while not stop.is_set():
                    futs = [(b"v%d-%06d" % (trial, i + k), p.send("t", b"v%d-%06d" % (trial, i + k)))
                            for k in range(20)]
                    i += 20
                    while not stop.is_set() and not all(fut.is_done for _v, fut in futs):
                        time.sleep(0.001)
                    # acknowledged: what succeeded (after the kill, pending ones never are)
                    acked.extend((fut.value.offset, v) for v, fut in futs
                                 if fut.is_done and fut.succeeded())
            except Exception:  # kafka errors once the leader is gone
                pass
            finally:
                try:
                    p.close(timeout=1)
                except Exception:  # records left unsent: never acknowledged
                    pass

        th = threading.Thread(target=produce, args=(srv_a.bootstrap,))
        th.start()
        wait_for(lambda: len(acked) > rng.randint(20, 400), timeout=120, interval=0.01,
                 what="acknowledged records")
        srv_a.kill()                       # kill -9 the leader mid-production
        stop.set()
        th.join(timeout=60)
        time.sleep(0.5)
        f.send_signal(signal.SIGTERM)      # the follower was retrying the lost leader
        assert f.wait(timeout=30) == 0
        got = dict((int(o), v) for o, v in (ln.split(b" ", 1) for ln in cli(
            "--root", b, "consume", "t", "--format", "%o %s").stdout.splitlines()))
        missing = [(o, v) for o, v in acked if got.get(o) != v]
        assert acked and not missing, f"trial {trial}: acknowledged but not on the follower: {missing[:5]}"
        # B is served: it promotes itself (a new leader epoch) and takes more records
        srv_b = start_serve(cli, env={"FSLOG_ROOT": str(b)})
        try:
            srv_b.wait_until("promoted to leader")
            p = kafka.KafkaProducer(bootstrap_servers=srv_b.bootstrap, acks=1)
            for k in range(50):
                p.send("t", b"after-%d" % k)
            p.flush(30)
            p.close()
            # A, back as a follower of B, drops its unreplicated tail and converges
            cp = cli("--root", a, "replicate", "--from", srv_b.bootstrap, "--once", "--json")
            summary = json.loads(cp.stdout)
            ends_a = b"".join(x.read_bytes() for x in sorted((a / "topics" / "t" / "t-0").glob("*.log")))
            ends_b = b"".join(x.read_bytes() for x in sorted((b / "topics" / "t" / "t-0").glob("*.log")))
            assert ends_a == ends_b
            if summary["records_truncated"]:
                assert "records (offsets" in cp.stderr.decode()
            cli("--root", a, "verify")
        finally:
            srv_b.stop()
