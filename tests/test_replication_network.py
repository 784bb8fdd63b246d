"""The network follower (``fslog replicate --from HOST:PORT[,...]``) against real ``fslog
serve`` processes: partitions fetched from the broker Metadata names as their leader,
the map asked again after NOT_LEADER_OR_FOLLOWER / UNKNOWN_TOPIC_OR_PARTITION, a plain
consumer (replica id -1) reading to the high watermark, a follower killed -9 mid-fetch,
and retention, compaction, topic deletion and group offsets carried over the wire.

fslog serve is a one-broker cluster: its Metadata names itself as every partition's
leader. Two brokers are not simulated by two servers claiming the same partitions (that
would not be sound); the routing test starts two servers and points the follower's
leader map for one partition at the second one, as a multi-broker Metadata would."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from conftest import wait_for
from replication_helpers import (
    TINY,
    end_offset,
    kill_follower_mid_copy_and_resume,
    lines,
    two_partitions_of_tiny_segments,
)
from serve_fixtures import start_serve

import fslog
from fslog.replication.network import NetworkLeader


def test_each_partition_is_fetched_from_its_leader_and_a_moved_leader_is_asked_again(cli, tmp_path):
    ra, rb_ = tmp_path / "a", tmp_path / "b"
    cli("--root", ra, "topic", "create", "t", "--partitions", "2")
    cli("--root", ra, "topic", "create", "u")
    cli("--root", ra, "produce", "t", "--partition", "1", input=lines("a", 10))
    cli("--root", ra, "produce", "u", input=lines("u", 5))
    cli("--root", rb_, "topic", "create", "t", "--partitions", "2")
    cli("--root", rb_, "produce", "t", "--partition", "1", input=lines("b", 7))
    sa = start_serve(cli, "--no-auto-create-topics", env={"FSLOG_ROOT": str(ra)})
    sb = start_serve(cli, "--node-id", "7", "--no-auto-create-topics", env={"FSLOG_ROOT": str(rb_)})
    leader = NetworkLeader(f"127.0.0.1:1,{sa.bootstrap}")  # the first address is refused
    try:
        topics = leader.topics()
        assert sorted(topics) == ["t", "u"] and leader.replica_id == 1 and leader.is_fslog
        assert leader.partition_state("t", 1).end == 10
        # Metadata that put t/1 on broker 7 (the second server): fetches go there
        leader._brokers[7] = ("127.0.0.1", sb.port)
        leader._leaders[("t", 1)] = 7
        assert leader.partition_state("t", 1).end == 7
        data, _ = leader.fetch("t", 1, 0, 1 << 20)  # (a view into the response)
        assert b"b-000006" in bytes(data) and b"a-000000" not in bytes(data)
        # a leader map that is wrong: broker 7 has no topic u (UNKNOWN_TOPIC_OR_PARTITION):
        # nothing is taken from it, the map entry goes, and Metadata puts it back on 0
        leader._leaders[("u", 0)] = 7
        assert leader.fetch("u", 0, 0, 1 << 20) == (bytearray(), None)
        assert ("u", 0) not in leader._leaders
        leader.topics()
        assert leader._leaders[("u", 0)] == 0 and leader._leaders[("t", 1)] == 0
        data, _ = leader.fetch("u", 0, 0, 1 << 20)
        assert b"u-000004" in bytes(data)
    finally:
        leader.close()
        sa.stop()
        sb.stop()


def test_a_plain_consumer_copies_to_the_high_watermark_and_is_no_follower(cli, tmp_path):
    """Replica id -1 (what ``replicate --from`` is against a non-fslog Kafka cluster):
    the server does not count it for acks=all, and it copies what consumers may read."""
    from fslog.replication.follower import Follower
    cli("topic", "create", "t", "--partitions", "2")
    cli("produce", "t", input=lines("r", 2000))
    srv = start_serve(cli)
    b = tmp_path / "copy"
    try:
        f = Follower(fslog.Log(str(b)), NetworkLeader(srv.bootstrap, replica_id=-1))
        f.start()
        try:
            f.run_pass()
        finally:
            f.close()
        assert f.summary()["offsets_copied"] == 2000
        for p in range(2):
            assert end_offset(b, "t", p) == end_offset(cli.root, "t", p)
        st = json.loads(cli("status", "--json").stdout)
        assert [x for sv in st["servers"] for x in sv["followers"]] == []
    finally:
        srv.stop()


def test_a_network_follower_killed_mid_fetch_resumes_with_no_gap_and_no_duplicate(cli, tmp_path):
    two_partitions_of_tiny_segments(cli.root, 40000)
    srv = start_serve(cli)
    try:
        kill_follower_mid_copy_and_resume(cli, cli.root, tmp_path / "b", srv.bootstrap,
                                          records=40000, live=2000, most_segments=40, seed=11)
    finally:
        srv.stop()


def test_retention_compaction_deletion_and_groups_follow_a_served_leader(cli, tmp_path):
    a, b = cli.root, tmp_path / "b"
    cli("topic", "create", "old", *TINY, "--config", "retention.bytes=10000")
    cli("topic", "create", "kv", *TINY, "--config", "cleanup.policy=compact",
        "--config", "min.cleanable.dirty.ratio=0.01")
    cli("topic", "create", "gone")
    cli("produce", "gone", input=b"x\n")
    cli("produce", "kv", "-K", ":", input=b"".join(b"k%d:v%d\n" % (i % 20, i) for i in range(2000)))
    cli("produce", "old", input=lines("o", 1500))
    cli("consume", "old", "--group", "g", "--max-messages", "700", "--quiet")
    srv = start_serve(cli)
    try:
        f = cli.popen("--root", b, "replicate", "--from", srv.bootstrap)
        wait_for(lambda: (b / "topics" / "gone").is_dir() and end_offset(b, "old") == 1500,
                 timeout=60, what="the first copy")
        cli("produce", "old", input=lines("o", 1500, start=1500))
        cli("clean", "old")                                  # retention moves the log start
        cli("produce", "kv", "-K", ":", input=b"".join(b"k%d:w%d\n" % (i % 20, i) for i in range(500)))
        cli("clean", "kv", "--compact-now")                  # compaction rewrites segments
        cli("topic", "delete", "gone")
        cli("consume", "old", "--group", "g", "--max-messages", "100", "--quiet")
        committed = json.loads(cli("group", "describe", "g", "--json").stdout)[
            "partitions"][0]["committed"]

        def records(root, topic):
            r = fslog.Log(str(root)).reader(topic)
            try:
                return {x.offset: (x.key, x.value) for x in r}
            finally:
                r.close()

        def caught_up():
            try:
                if records(a, "old") != records(b, "old") or \
                        end_offset(a, "kv") != end_offset(b, "kv"):
                    return False
            except (fslog.FslogError, OSError):
                return False
            described = cli("--root", b, "group", "describe", "g", "--json", check=None)
            return (not (b / "topics" / "gone").exists() and described.returncode == 0 and
                    json.loads(described.stdout)["partitions"][0]["committed"] == committed)
        wait_for(caught_up, timeout=60, interval=0.2, what="the follower to catch up")
        # compaction over the wire: the leader's segments are not on the wire, so batches
        # the follower had copied before keep their superseded records; offsets stay the
        # same: every record the leader kept is on the follower at its offset, and what
        # the follower has more is only records a later one of the same key superseded
        ka, kb = records(a, "kv"), records(b, "kv")
        assert all(kb.get(o) == r for o, r in ka.items())
        latest = {k: o for o, (k, _v) in ka.items()}
        assert all(latest[k] > o for o, (k, _v) in kb.items() if o not in ka)
        la, lb = fslog.Log(str(a)), fslog.Log(str(b))
        assert lb.topic("old").partition(0).start_offset() == la.topic("old").partition(0).start_offset() > 0
        f.send_signal(signal.SIGTERM)
        assert f.wait(timeout=30) == 0
        err = f.stderr.read().decode()
        assert "topic gone: deleted (the leader deleted it)" in err
        assert "old/0: log start offset now" in err
        cli("--root", b, "verify")
    finally:
        srv.stop()


def test_the_hand_encoded_fetch_request_is_the_one_kio_encodes():
    import datetime
    import io

    from kio.schema.fetch.v12 import request as fr

    from fslog.replication import wire
    wants = {"pair": [(0, 123, 8 << 20), (3, 1 << 40, 1)], "é" * 90: [(1, 5, 100)]}
    req = fr.FetchRequest(
        replica_id=1, max_wait=datetime.timedelta(milliseconds=500), min_bytes=1,  # type: ignore[arg-type]
        topics=tuple(fr.FetchTopic(topic=t, partitions=tuple(  # type: ignore[arg-type]
            fr.FetchPartition(partition=p, fetch_offset=o, partition_max_bytes=m)  # type: ignore[arg-type]
            for p, o, m in ps)) for t, ps in wants.items()),
        forgotten_topics_data=())
    buf = io.BytesIO()
    wire._writer(fr.FetchRequest)(buf, req)
    assert wire.fetch_request_v12(1, 500, 1, wants) == buf.getvalue()


def test_the_hand_parsed_fetch_response_is_the_one_kio_parses():
    """A Fetch v12 response as a Kafka broker may send it (several topics, a null and an
    empty records field, aborted transactions, tagged fields: a diverging epoch, the
    current leader) and as fslog serve encodes it: ``parse_fetch_response_v12`` reads
    what kio reads, the records as views into the frame."""
    import datetime
    import io

    from kio.schema.errors import ErrorCode
    from kio.schema.fetch.v12 import response as fr

    from fslog.broker.fetch import _Part, encode_response
    from fslog.replication import wire

    def part(i, code, records, aborted=None, diverging=None):
        kw = {} if diverging is None else {"diverging_epoch": fr.EpochEndOffset(
            epoch=diverging[0], end_offset=diverging[1])}
        return fr.PartitionData(partition_index=i, error_code=code, high_watermark=100 + i,  # type: ignore[arg-type]
                                last_stable_offset=90, log_start_offset=7 + i,  # type: ignore[arg-type]
                                aborted_transactions=aborted, preferred_read_replica=-1,  # type: ignore[arg-type]
                                records=records, current_leader=fr.LeaderIdAndEpoch(  # type: ignore[arg-type]
                                    leader_id=3, leader_epoch=9), **kw)  # type: ignore[arg-type]
    resp = fr.FetchResponse(
        throttle_time=datetime.timedelta(0), error_code=ErrorCode.none, session_id=0,  # type: ignore[arg-type]
        responses=(fr.FetchableTopicResponse(topic="t", partitions=(  # type: ignore[arg-type]
            part(0, ErrorCode.none, b"\x01" * 300),
            part(1, ErrorCode.offset_out_of_range, None, diverging=(4, 50)),
            part(2, ErrorCode.none, b"", aborted=(fr.AbortedTransaction(
                producer_id=5, first_offset=6), fr.AbortedTransaction(  # type: ignore[arg-type]
                producer_id=7, first_offset=8))))),  # type: ignore[arg-type]
            fr.FetchableTopicResponse(topic="é" * 70, partitions=(  # type: ignore[arg-type]
                part(9, ErrorCode.not_leader_or_follower, b"abc"),))))
    buf = io.BytesIO()
    wire._writer(fr.FetchResponse)(buf, resp)
    p = _Part("u", 4, 10, 1 << 20)
    p.hw, p.start, p.records, p.size = 12, 3, [b"\x02" * 40, b"\x03" * 9], 49
    served = b"".join(encode_response(12, 1, {"u": [p]}, False))[8 + 1:]  # size, id, tags
    for raw in (buf.getvalue(), served):
        frame = memoryview(bytearray(raw)).toreadonly()
        mine = wire.parse_fetch_response_v12(frame, 0)
        theirs, _n = wire._reader(fr.FetchResponse)(frame, 0)
        assert mine.error_code == theirs.error_code
        assert [t.topic for t in mine.responses] == [t.topic for t in theirs.responses]
        for a, b in zip(mine.responses, theirs.responses):
            assert [(x.partition_index, x.error_code, x.high_watermark, x.log_start_offset,
                     None if x.records is None else bytes(x.records)) for x in a.partitions] == \
                [(x.partition_index, x.error_code, x.high_watermark, x.log_start_offset,
                  x.records) for x in b.partitions]
            assert all(x.records is None or isinstance(x.records, memoryview)
                       for x in a.partitions)
    with pytest.raises(fslog.FslogError, match="does not parse"):
        wire.parse_fetch_response_v12(memoryview(buf.getvalue()[:-20]), 0)


def test_kio_loads_without_hypothesis_and_hypothesis_still_imports():
    code = ("import sys; import fslog.replication.network; "
            "assert 'hypothesis' not in sys.modules, 'kio pulled in hypothesis'; "
            "import hypothesis; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
