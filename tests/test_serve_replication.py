"""The replication pieces of ``fslog serve``: OffsetForLeaderEpoch answered from the
leader-epoch checkpoint, and serve promoting a follower root it starts on."""

from __future__ import annotations

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
