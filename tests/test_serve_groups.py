"""fslog serve as the group coordinator: the classic protocol request by request (with
kio-encoded requests, so versions and error codes are exact), the offsets shared with
the CLI's groups, and the refusal of a group used by CLI members and network clients at
once."""

from __future__ import annotations

import datetime
import json
import time

import pytest
from group_wire import WireClient, nested
from kio.schema.errors import ErrorCode
from serve_fixtures import start_serve

JOIN, SYNC, HEARTBEAT, LEAVE, COMMIT, FETCH, FIND = 11, 14, 12, 13, 8, 9, 10
SESSION = datetime.timedelta(milliseconds=6000)  # Kafka's group.min.session.timeout.ms


@pytest.fixture
def serve(cli):
    """``fslog serve`` over the test's root, where an empty group's first JoinGroup does
    not wait for more members (``--group-initial-rebalance-delay-ms 0``)."""
    s = start_serve(cli, "--group-initial-rebalance-delay-ms", "0")
    yield s
    s.kill()


@pytest.fixture
def kafka_serve(cli):
    """``fslog serve`` with Kafka's defaults (an empty group's first join waits 3 s)."""
    s = start_serve(cli)
    yield s
    s.kill()


def subscription(*topics: str) -> bytes:
    out = b"\x00\x00" + len(topics).to_bytes(4, "big")
    for t in topics:
        out += len(t).to_bytes(2, "big") + t.encode()
    return out + b"\xff\xff\xff\xff"


def assignment(topic: str, *parts: int) -> bytes:
    out = b"\x00\x00" + (1).to_bytes(4, "big") + len(topic).to_bytes(2, "big") + topic.encode()
    out += len(parts).to_bytes(4, "big") + b"".join(p.to_bytes(4, "big") for p in parts)
    return out + b"\xff\xff\xff\xff"


def join_request(c: WireClient, group: str, member_id: str = "", version: int = 7,
                 topics=("t",), session=SESSION):
    cls, _ = c.request(JOIN, version, group_id=group, session_timeout=session,
                       rebalance_timeout=datetime.timedelta(seconds=30), member_id=member_id,
                       protocol_type="consumer", protocols=())
    proto = nested(cls, "JoinGroupRequestProtocol")
    return cls(group_id=group, session_timeout=session,
               rebalance_timeout=datetime.timedelta(seconds=30), member_id=member_id,
               protocol_type="consumer",
               protocols=(proto(name="range", metadata=subscription(*topics)),))


def join(c: WireClient, group: str, member_id: str = "", session=SESSION):
    """Join as Kafka's v4+ clients do: MEMBER_ID_REQUIRED first, then with the id."""
    r = c.call(JOIN, 7, **_fields(join_request(c, group, member_id, session=session)))
    if r.error_code == ErrorCode.member_id_required:
        r = c.call(JOIN, 7, **_fields(join_request(c, group, r.member_id, session=session)))
    return r


def _fields(obj) -> dict:
    import dataclasses
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def sync(c: WireClient, group: str, generation: int, member_id: str, given: dict | None = None):
    cls, _ = c.request(SYNC, 5, group_id=group, generation_id=generation, member_id=member_id,
                       protocol_type="consumer", protocol_name="range", assignments=())
    acls = nested(cls, "SyncGroupRequestAssignment")
    return c.call(SYNC, 5, group_id=group, generation_id=generation, member_id=member_id,
                  protocol_type="consumer", protocol_name="range",
                  assignments=tuple(acls(member_id=m, assignment=a)
                                    for m, a in (given or {}).items()))


def heartbeat(c: WireClient, group: str, generation: int, member_id: str) -> ErrorCode:
    return c.call(HEARTBEAT, 4, group_id=group, generation_id=generation,
                  member_id=member_id).error_code


def commit(c: WireClient, group: str, generation: int, member_id: str, topic: str,
           offsets: dict[int, int], version: int = 8):
    cls, _ = c.request(COMMIT, version, group_id=group, generation_id_or_member_epoch=generation,
                       member_id=member_id, topics=())
    tcls, pcls = nested(cls, "OffsetCommitRequestTopic"), nested(cls, "OffsetCommitRequestPartition")
    r = c.call(COMMIT, version, group_id=group, generation_id_or_member_epoch=generation,
               member_id=member_id, topics=(tcls(name=topic, partitions=tuple(
                   pcls(partition_index=p, committed_offset=o, committed_metadata="")
                   for p, o in offsets.items())),))
    return {p.partition_index: p.error_code for t in r.topics for p in t.partitions}


def fetch_offsets(c: WireClient, group: str, topic: str, parts) -> dict[int, int]:
    cls, _ = c.request(FETCH, 8, groups=(), require_stable=False)
    gcls, tcls = nested(cls, "OffsetFetchRequestGroup"), nested(cls, "OffsetFetchRequestTopics")
    r = c.call(FETCH, 8, require_stable=False, groups=(
        gcls(group_id=group, topics=(tcls(name=topic, partition_indexes=tuple(parts)),)),))
    (g,) = r.groups
    assert g.error_code == ErrorCode.none
    return {p.partition_index: p.committed_offset for t in g.topics for p in t.partitions}


def wait_for(predicate, timeout: float = 60, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def members_of(cli, group: str) -> list:
    r = cli.run("group", "describe", group, "--json", check=None)
    return json.loads(r.stdout)["members"] if r.returncode == 0 else []


def test_find_coordinator_names_this_server(cli, serve):
    c = WireClient(serve.port)
    r = c.call(FIND, 3, key="g", key_type=0)
    assert (r.error_code, r.host, r.port) == (ErrorCode.none, "127.0.0.1", serve.port)
    r4 = c.call(FIND, 4, key_type=0, coordinator_keys=("a", "b"))
    assert [(x.key, x.port) for x in r4.coordinators] == [("a", serve.port), ("b", serve.port)]


def test_classic_protocol_join_sync_heartbeat_rebalance_expiry(cli, kafka_serve):
    serve = kafka_serve
    cli.create("t", "--partitions", "4")
    a, b = WireClient(serve.port, "a"), WireClient(serve.port, "b")
    # v4+: an empty member id gets MEMBER_ID_REQUIRED and an id to join with
    first = a.call(JOIN, 7, **_fields(join_request(a, "g")))
    assert first.error_code == ErrorCode.member_id_required and first.member_id.startswith("a-")
    ja = a.call(JOIN, 7, **_fields(join_request(a, "g", first.member_id)))
    assert ja.error_code == ErrorCode.none and ja.generation_id == 1
    assert ja.leader == ja.member_id and ja.protocol_name == "range"
    assert [m.member_id for m in ja.members] == [ja.member_id]
    ma = ja.member_id
    sa = sync(a, "g", 1, ma, {ma: assignment("t", 0, 1, 2, 3)})
    assert sa.error_code == ErrorCode.none and sa.assignment == assignment("t", 0, 1, 2, 3)
    assert heartbeat(a, "g", 1, ma) == ErrorCode.none
    assert heartbeat(a, "g", 0, ma) == ErrorCode.illegal_generation
    assert heartbeat(a, "g", 1, "nobody") == ErrorCode.unknown_member_id

    # b joins: its JoinGroup waits while a learns of the rebalance from its heartbeat
    rb = b.call(JOIN, 7, **_fields(join_request(b, "g")))
    b.send(JOIN, 7, join_request(b, "g", rb.member_id))
    mb = rb.member_id
    assert wait_for(lambda: heartbeat(a, "g", 1, ma) == ErrorCode.rebalance_in_progress,
                    what="a told of the rebalance")
    assert sync(a, "g", 1, ma).error_code == ErrorCode.rebalance_in_progress
    ja2 = a.call(JOIN, 7, **_fields(join_request(a, "g", ma)))
    jb2 = b.receive()
    assert ja2.generation_id == jb2.generation_id == 2
    assert ja2.leader == ma and {m.member_id for m in ja2.members} == {ma, mb}
    assert jb2.members == ()  # only the leader gets the members
    b.send(SYNC, 5, nested_sync(b, "g", 2, mb))   # a follower's SyncGroup waits for the leader
    sa2 = sync(a, "g", 2, ma, {ma: assignment("t", 0, 1), mb: assignment("t", 2, 3)})
    sb2 = b.receive()
    assert sa2.assignment == assignment("t", 0, 1) and sb2.assignment == assignment("t", 2, 3)

    # the CLI sees both members and who owns what
    d = json.loads(cli.run("group", "describe", "g", "--json").stdout)
    assert d["generation"] == 2 and {m["member_id"] for m in d["members"]} == {ma, mb}
    owners = {p["partition"]: p["member"]["member_id"] for p in d["partitions"] if p["member"]}
    assert owners == {0: ma, 1: ma, 2: mb, 3: mb}

    # b stops heartbeating: removed after its session timeout, a is told to rejoin
    assert wait_for(lambda: heartbeat(a, "g", 2, ma) == ErrorCode.rebalance_in_progress,
                    timeout=60, what="b expired")
    assert "sent nothing within its session timeout of 6000 ms" in serve.stderr_text()
    ja3 = a.call(JOIN, 7, **_fields(join_request(a, "g", ma)))
    assert ja3.generation_id == 3 and [m.member_id for m in ja3.members] == [ma]
    assert heartbeat(b, "g", 2, mb) == ErrorCode.unknown_member_id

    # LeaveGroup v3+ (batch): the group becomes empty and the CLI may use it again
    r = a.call(LEAVE, 5, group_id="g", members=(
        nested(a.request(LEAVE, 5, group_id="g", members=())[0], "MemberIdentity")(
            member_id=ma, group_instance_id=None, reason=None),))
    assert r.error_code == ErrorCode.none and [m.error_code for m in r.members] == [ErrorCode.none]
    d = json.loads(cli.run("group", "describe", "g", "--json").stdout)
    assert d["members"] == []


def nested_sync(c: WireClient, group: str, generation: int, member_id: str):
    cls, _ = c.request(SYNC, 5, group_id=group, generation_id=generation, member_id=member_id,
                       protocol_type="consumer", protocol_name="range", assignments=())
    return cls(group_id=group, generation_id=generation, member_id=member_id,
               protocol_type="consumer", protocol_name="range", assignments=())


def test_offsets_are_the_cli_groups_files(cli, serve):
    cli.create("t")
    cli.produce("t", b"".join(b"r%d\n" % i for i in range(10)))
    # the CLI commits first: a network client reads that offset
    cli.run("consume", "t", "--group", "shared", "--max-messages", "4")
    c = WireClient(serve.port)
    assert fetch_offsets(c, "shared", "t", [0, 1]) == {0: 4, 1: -1}
    j = join(c, "shared")
    assert j.error_code == ErrorCode.none
    assert sync(c, "shared", j.generation_id, j.member_id,
                {j.member_id: assignment("t", 0)}).error_code == ErrorCode.none
    # a stale generation cannot commit; the member can, into the same files
    assert commit(c, "shared", j.generation_id + 5, j.member_id, "t", {0: 7}) == \
        {0: ErrorCode.illegal_generation}
    assert commit(c, "shared", j.generation_id, "stranger", "t", {0: 7}) == \
        {0: ErrorCode.unknown_member_id}
    assert commit(c, "shared", j.generation_id, j.member_id, "t", {0: 7, 5: 1}) == \
        {0: ErrorCode.none, 5: ErrorCode.unknown_topic_or_partition}
    d = json.loads(cli.run("group", "describe", "shared", "--json").stdout)
    assert {p["partition"]: p["committed"] for p in d["partitions"]} == {0: 7}
    assert cli.run("group", "reset", "shared", "--topic", "t", "--to-earliest", "--execute",
                   check=1).stderr.count(b"network member") == 1
    c.call(LEAVE, 2, group_id="shared", member_id=j.member_id)
    # and back: the CLI continues from what the network member committed
    out = cli.run("consume", "t", "--group", "shared").stdout
    assert out == b"r7\nr8\nr9\n"
    # OffsetFetch v1 (the oldest handled) and every committed offset (topics null, v7)
    r1 = c.call(FETCH, 1, group_id="shared", topics=(
        nested(c.request(FETCH, 1, group_id="shared", topics=())[0], "OffsetFetchRequestTopic")(
            name="t", partition_indexes=(0,)),))
    assert r1.topics[0].partitions[0].committed_offset == 10
    r7 = c.call(FETCH, 7, group_id="shared", topics=None, require_stable=False)
    assert {(t.name, p.partition_index): p.committed_offset for t in r7.topics
            for p in t.partitions} == {("t", 0): 10}


def test_a_client_outside_the_group_commits_only_while_no_member_reads(cli, serve):
    cli.create("t")
    c = WireClient(serve.port)
    assert commit(c, "simple", -1, "", "t", {0: 0}) == {0: ErrorCode.none}
    assert json.loads(cli.run("group", "describe", "simple", "--json").stdout)[
        "partitions"][0]["committed"] == 0


def test_network_clients_are_refused_a_group_the_cli_reads(cli, serve):
    cli.create("t")
    member = cli.popen("consume", "t", "--group", "mixed", "--follow")
    try:
        wait_for(lambda: members_of(cli, "mixed"), what="the CLI member registered")
        c = WireClient(serve.port)
        j = c.call(JOIN, 7, **_fields(join_request(c, "mixed")))
        assert j.error_code == ErrorCode.inconsistent_group_protocol
        serve.wait_until("live fslog consume member")
        assert commit(c, "mixed", -1, "", "t", {0: 0}) == {0: ErrorCode.unknown_member_id}
    finally:
        member.terminate()
        member.wait(timeout=30)
    # once the CLI member has left, network clients may use the group
    c = WireClient(serve.port)
    assert join(c, "mixed").error_code == ErrorCode.none


def test_the_cli_is_refused_a_group_of_network_clients(cli, serve):
    cli.create("t")
    c = WireClient(serve.port)
    # a session that outlasts the CLI runs below however busy the machine (it sends no heartbeat)
    j = join(c, "netgroup", session=datetime.timedelta(minutes=10))
    assert j.error_code == ErrorCode.none
    r = cli.run("consume", "t", "--group", "netgroup", check=1)
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "network client" in err and serve.bootstrap in err
    assert "Traceback" not in err
    assert cli.run("group", "delete", "netgroup", check=1).stderr.count(b"network member") == 1


def test_invalid_group_ids_and_session_timeouts(cli, serve):
    c = WireClient(serve.port)
    r = c.call(JOIN, 7, **_fields(join_request(c, "no/slash")))
    assert r.error_code == ErrorCode.invalid_group_id
    req = join_request(c, "ok")
    fields = dict(_fields(req), session_timeout=datetime.timedelta(milliseconds=100))
    assert c.call(JOIN, 7, **fields).error_code == ErrorCode.invalid_session_timeout


@pytest.mark.parametrize("version", [0, 3])
def test_old_join_versions_get_a_member_id_at_once(cli, serve, version):
    c = WireClient(serve.port)
    cls, _ = c.request(JOIN, version, group_id="old", session_timeout=SESSION, member_id="",
                       protocol_type="consumer", protocols=())
    proto = nested(cls, "JoinGroupRequestProtocol")
    fields = {"group_id": "old", "session_timeout": SESSION, "member_id": "",
              "protocol_type": "consumer",
              "protocols": (proto(name="range", metadata=subscription("t")),)}
    if version >= 1:
        fields["rebalance_timeout"] = datetime.timedelta(seconds=10)
    r = c.call(JOIN, version, **fields)
    assert r.error_code == ErrorCode.none and r.generation_id == 1 and r.leader == r.member_id
