"""The replication pieces of ``fslog serve``: OffsetForLeaderEpoch answered from the
leader-epoch checkpoint, and serve promoting a follower root it starts on."""

from __future__ import annotations

import importlib

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.offset_for_leader_epoch.v2 import request as v2
from kio.schema.offset_for_leader_epoch.v4 import request as v4
from serve_fixtures import start_serve

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


@pytest.mark.skipif(not hasattr(importlib.import_module("fslog.broker.fetch"), "fetch"),
                    reason="this checkout's fslog serve has no Fetch handler yet")
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
        cli("--root", b, "verify")
        assert cli("--root", b, "consume", "t").stdout == cli("consume", "t").stdout
    finally:
        srv.stop()
