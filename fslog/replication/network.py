"""A leader reached over Kafka's protocol: an ``fslog serve`` (HOST:PORT) or a Kafka
cluster (its bootstrap servers, HOST:PORT[,HOST:PORT...]). The source interface of
``source.py`` on top of ``wire.py``.

- who we are: against an ``fslog serve`` (its Metadata cluster id starts with
  ``fslog-``) the follower fetches with a replica id (``--node-id``, default 1), so the
  server counts it for acks=all and the high watermark; against any other Kafka cluster
  it is a plain consumer (replica id -1) and copies up to the high watermark.
- topics and leaders: Metadata v12 (partition counts, each partition's leader broker,
  the brokers' addresses, topic ids when the cluster has them) on every pass;
  DescribeConfigs v4 (overrides: entries whose source is a topic config) when the server
  offers it (ApiVersions), else {} (defaults).
- partition state: ListOffsets v7 (earliest, latest), sent to the partition's leader.
  The leader's segment base offsets are not on the wire, so the follower rolls by the
  topic's segment.bytes and segment.ms — the leader's, copied with the config — which,
  applied to the same batches, roll where the leader rolled.
- data: Fetch v12 (the request encoded and the response parsed by hand:
  ``wire.fetch_request_v12``, ``wire.parse_fetch_response_v12``), whole batches (views
  into the received buffer, never copied), each partition's fetch sent to its leader broker (one connection per broker).
  NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION and the like drop the leader map;
  the next pass reads Metadata again and goes where it says.
- divergence: OffsetForLeaderEpoch v4, to the leader.
- groups' committed offsets: ListGroups on every broker and OffsetFetch v8 to the broker
  that listed the group (its coordinator), when the servers offer both (ApiVersions).
- waiting: a long-poll Fetch (min_bytes 1) from the follower's positions; with leaders on
  several brokers each gets a share of the wait in turn.
- security: TLS and SASL as ``wire.ClientSecurity`` says, on every connection.

A connection lost is ``LeaderUnavailableError`` (the follower retries); it is never taken
for an API the server lacks. Not thread-safe: one per thread (``twin`` makes another on
connections of its own, ``adopt`` takes the leaders its ``topics()`` found; ``interrupt``
may be called from another thread).
"""

from __future__ import annotations

import threading

from kio.schema.errors import ErrorCode

from ..errors import FslogError, LeaderUnavailableError
from .source import LeaderPartition
from .wire import PLAINTEXT, ClientSecurity, Connection, fetch_request_v12, parse_address

# The "type: ignore[arg-type]" comments below: kio declares request fields with phantom
# types (i8, i32, i64, BrokerId, TopicName, i32Timedelta) that plain ints, strs and
# timedeltas do not satisfy statically; the values are in range, and kio's encoder checks.
_TOPIC_RESOURCE = 2
_TOPIC_CONFIG_SOURCE = 1  # DYNAMIC_TOPIC_CONFIG: an override of this topic
_EARLIEST, _LATEST = -2, -1
_BOOTSTRAP = -1           # the key of the bootstrap connection until Metadata names nodes
_FSLOG_CLUSTER = "fslog-"  # fslog serve's cluster ids
_FETCH, _DESCRIBE_CONFIGS, _LIST_GROUPS, _OFFSET_FETCH = 1, 32, 16, 9
# the partition's leader is elsewhere now, or not known yet: ask Metadata again
_MOVED = frozenset({ErrorCode.not_leader_or_follower, ErrorCode.unknown_topic_or_partition,
                    ErrorCode.leader_not_available, ErrorCode.fenced_leader_epoch,
                    ErrorCode.unknown_leader_epoch, ErrorCode.replica_not_available,
                    ErrorCode.not_coordinator, ErrorCode.coordinator_not_available,
                    ErrorCode.coordinator_load_in_progress})


class NetworkLeader:
    def __init__(self, bootstrap: str, replica_id: int | None = None,
                 security: ClientSecurity = PLAINTEXT):
        self.bootstrap = [parse_address(a.strip()) for a in bootstrap.split(",") if a.strip()]
        if not self.bootstrap:
            raise FslogError(f"{bootstrap!r} is not HOST:PORT[,HOST:PORT...]")
        self.security = security
        self._given_replica_id = replica_id
        self.replica_id = replica_id if replica_id is not None else -1
        self.cluster_id: str | None = None
        self._conns: dict[int, Connection] = {}
        self._brokers: dict[int, tuple[str, int]] = {}
        self._leaders: dict[tuple[str, int], int] = {}
        self._parts: dict[str, int] = {}
        self._conn(_BOOTSTRAP)  # fail now, with one line, if nobody listens there

    def describe(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.bootstrap)

    @property
    def is_fslog(self) -> bool:
        return bool(self.cluster_id and self.cluster_id.startswith(_FSLOG_CLUSTER))

    # ------------------------------------------------------------ connections
    def _conn(self, node: int) -> Connection:
        c = self._conns.get(node)
        if c is not None:
            return c
        if node == _BOOTSTRAP:
            last: FslogError | None = None
            for host, port in self.bootstrap:
                try:
                    c = Connection(host, port, security=self.security)
                    break
                except LeaderUnavailableError as e:
                    last = e
            else:
                assert last is not None
                raise last
        elif node in self._brokers:
            host, port = self._brokers[node]
            c = Connection(host, port, security=self.security)
        else:
            raise LeaderUnavailableError(f"{self.describe()}: broker {node} is not in the "
                                         f"cluster's Metadata now; asking again")
        self._conns[node] = c
        return c

    def _any(self) -> tuple[int, Connection]:
        """A connection for requests any broker answers (Metadata, DescribeConfigs)."""
        for node, c in self._conns.items():
            return node, c
        return _BOOTSTRAP, self._conn(_BOOTSTRAP)

    def _request(self, node: int, req, conn: Connection | None = None):
        c = conn or self._conn(node)
        try:
            return c.request(req)
        except FslogError:
            self._drop(node)
            raise

    def _drop(self, node: int) -> None:
        c = self._conns.pop(node, None)
        if c is not None:
            c.close()

    def _leader_of(self, topic: str, p: int) -> int:
        node = self._leaders.get((topic, p))
        if node is None:
            raise LeaderUnavailableError(f"{self.describe()}: {topic}/{p} has no leader now; "
                                         f"asking again")
        return node

    def _moved(self, topic: str, p: int) -> None:
        """The leader map is stale: the next pass reads Metadata again."""
        self._leaders.pop((topic, p), None)

    # ------------------------------------------------------------ metadata
    def topics(self) -> dict[str, dict]:
        from kio.schema.metadata.v12.request import MetadataRequest
        node, conn = self._any()
        resp = self._request(node, MetadataRequest(
            topics=None, allow_auto_topic_creation=False,
            include_topic_authorized_operations=False), conn)
        self.cluster_id = resp.cluster_id
        if self._given_replica_id is None:
            self.replica_id = 1 if self.is_fslog else -1
        brokers = {int(b.node_id): (b.host, int(b.port)) for b in resp.brokers}
        for n in [n for n in self._conns if n != node and brokers.get(n) != self._brokers.get(n)]:
            self._drop(n)  # a broker gone or moved
        self._brokers = brokers
        if node == _BOOTSTRAP and len(brokers) == 1:
            # one broker: the bootstrap connection is that broker's
            self._conns[next(iter(brokers))] = self._conns.pop(_BOOTSTRAP)
        out: dict[str, dict] = {}
        leaders: dict[tuple[str, int], int] = {}
        for t in resp.topics:
            if t.error_code != ErrorCode.none or t.is_internal or t.name is None:
                continue
            tid = t.topic_id
            out[t.name] = {"partitions": len(t.partitions), "config": {},
                           "id": str(tid) if tid is not None and tid.int else None}
            for pm in t.partitions:
                if pm.error_code == ErrorCode.none and int(pm.leader_id) in brokers:
                    leaders[(t.name, int(pm.partition_index))] = int(pm.leader_id)
        self._leaders = leaders
        self._parts = {n: m["partitions"] for n, m in out.items()}
        if out and _DESCRIBE_CONFIGS in self._any()[1].apis:
            for name, cfg in self._configs(list(out)).items():
                out[name]["config"] = cfg
        return out

    def _configs(self, names: list[str]) -> dict[str, dict]:
        from kio.schema.describe_configs.v4 import request as dc

        from ..config import parse_config
        node, conn = self._any()
        resp = self._request(node, dc.DescribeConfigsRequest(resources=tuple(
            dc.DescribeConfigsResource(resource_type=_TOPIC_RESOURCE, resource_name=n,  # type: ignore[arg-type]
                                       configuration_keys=None) for n in names)), conn)
        out = {}
        for r in resp.results:
            if r.error_code != ErrorCode.none:
                continue
            raw = {c.name: c.value for c in r.configs
                   if c.config_source == _TOPIC_CONFIG_SOURCE and c.value is not None}
            try:
                out[r.resource_name] = parse_config(raw)
            except FslogError:
                out[r.resource_name] = {}  # settings fslog does not have: defaults here
        return out

    def partition_state(self, topic: str, p: int) -> LeaderPartition:
        from kio.schema.list_offsets.v7 import request as lo
        node = self._leader_of(topic, p)
        got = {}
        for ts in (_EARLIEST, _LATEST):
            resp = self._request(node, lo.ListOffsetsRequest(
                replica_id=self.replica_id, isolation_level=0, topics=(lo.ListOffsetsTopic(  # type: ignore[arg-type]
                    name=topic, partitions=(lo.ListOffsetsPartition(partition_index=p,  # type: ignore[arg-type]
                                                                    timestamp=ts),)),)))  # type: ignore[arg-type]
            r = resp.topics[0].partitions[0]
            if r.error_code != ErrorCode.none:
                if r.error_code in _MOVED:
                    self._moved(topic, p)
                raise FslogError(f"{self.describe()}: {topic}/{p}: {r.error_code.name}")
            got[ts] = r.offset
        start, end = got[_EARLIEST], got[_LATEST]
        return LeaderPartition(start, end, [start], {}, [(-1, start)], 0)

    def end_offset_for_epoch(self, topic: str, p: int, epoch: int) -> tuple[int, int]:
        from kio.schema.offset_for_leader_epoch.v4 import request as oe
        node = self._leader_of(topic, p)
        resp = self._request(node, oe.OffsetForLeaderEpochRequest(
            replica_id=self.replica_id, topics=(oe.OffsetForLeaderTopic(  # type: ignore[arg-type]
                topic=topic, partitions=(oe.OffsetForLeaderPartition(  # type: ignore[arg-type]
                    partition=p, leader_epoch=epoch),)),)))  # type: ignore[arg-type]
        r = resp.topics[0].partitions[0]
        if r.error_code in _MOVED:
            self._moved(topic, p)
            raise LeaderUnavailableError(f"{self.describe()}: OffsetForLeaderEpoch {topic}/{p}: "
                                         f"{r.error_code.name}; asking Metadata again")
        if r.error_code != ErrorCode.none:
            raise FslogError(f"{self.describe()}: OffsetForLeaderEpoch {topic}/{p}: "
                             f"{r.error_code.name}")
        return r.leader_epoch, r.end_offset

    def latest_epoch(self, topic: str, p: int) -> int:
        return self.end_offset_for_epoch(topic, p, 0x7FFFFFFF)[0]

    # ------------------------------------------------------------ data
    def _fetch(self, node: int, wants: list[tuple[str, int, int]], max_bytes: int,
               wait_ms: int, min_bytes: int, replica_id: int | None = None):
        by_topic: dict[str, list[tuple[int, int, int]]] = {}
        for t, p, off in wants:
            by_topic.setdefault(t, []).append((p, off, max_bytes))
        body = fetch_request_v12(self.replica_id if replica_id is None else replica_id,
                                 wait_ms, min_bytes, by_topic)
        c = self._conn(node)
        try:
            return c.fetch_v12(body)
        except FslogError:
            self._drop(node)
            raise

    def peek(self, topic: str, p: int, offset: int) -> memoryview | bytearray:
        """The batch holding ``offset``, fetched as a consumer (replica id -1): a look
        back that does not move this follower's position on the leader (the high
        watermark and acks=all go by the position a follower fetches from)."""
        return self.fetch(topic, p, offset, 1, replica_id=-1)[0]

    def fetch(self, topic: str, p: int, offset: int, max_bytes: int,
              replica_id: int | None = None):
        node = self._leader_of(topic, p)
        resp = self._fetch(node, [(topic, p, offset)], max_bytes, 0, 0, replica_id)
        for t in resp.responses:
            for pd in t.partitions:
                if pd.error_code == ErrorCode.offset_out_of_range:
                    return bytearray(), None
                if pd.error_code in _MOVED:
                    self._moved(topic, p)
                    return bytearray(), None  # the next pass asks Metadata where it went
                if pd.error_code != ErrorCode.none:
                    raise FslogError(f"{self.describe()}: fetch {topic}/{p} at {offset}: "
                                     f"{_code_name(pd.error_code)}")
                return _whole_batches(pd.records or b""), None
        return bytearray(), None

    def fetch_many(self, positions: dict[tuple[str, int], int], max_bytes: int,
                   wait: float) -> dict[tuple[str, int], memoryview | bytearray | None]:
        """Kafka's replica fetcher: one long-poll Fetch per leader broker from
        ``positions`` (it also tells an fslog serve leader where this follower stands: its
        acks=all and high watermark), back when a leader appended or after ``wait``
        seconds. {partition: whole batches (maybe empty)}; None for a partition whose
        leader moved or answered an error (the caller's full pass sorts it out)."""
        by_node: dict[int, list[tuple[str, int, int]]] = {}
        out: dict[tuple[str, int], memoryview | bytearray | None] = {}
        for (t, p), off in positions.items():
            node = self._leaders.get((t, p))
            if node is None:
                out[(t, p)] = None
            else:
                by_node.setdefault(node, []).append((t, p, off))
        share = max(int(wait * 1000) // max(len(by_node), 1), 1)
        for node, wants in by_node.items():
            resp = self._fetch(node, wants, max_bytes, share, 1)
            for t in resp.responses:
                for pd in t.partitions:
                    key = (t.topic, int(pd.partition_index))
                    if pd.error_code != ErrorCode.none:
                        if pd.error_code in _MOVED:
                            self._moved(*key)
                        out[key] = None
                    else:
                        out[key] = _whole_batches(pd.records or b"")
            if any(out.get((t, p)) for t, p, _o in wants):
                break  # data: append it now, the other brokers on the next round
        return out

    # ------------------------------------------------------------ groups
    def committed_offsets(self) -> dict[str, dict[tuple[str, int], int]]:
        from kio.schema.list_groups.v4.request import ListGroupsRequest
        from kio.schema.offset_fetch.v8 import request as of
        out: dict[str, dict[tuple[str, int], int]] = {}
        nodes = sorted(self._brokers) or [self._any()[0]]
        for node in nodes:
            apis = self._conn(node).apis
            if _LIST_GROUPS not in apis or _OFFSET_FETCH not in apis:
                continue
            listed = self._request(node, ListGroupsRequest(states_filter=()))
            if listed.error_code != ErrorCode.none or not listed.groups:
                continue
            resp = self._request(node, of.OffsetFetchRequest(groups=tuple(
                of.OffsetFetchRequestGroup(group_id=g.group_id, topics=None)
                for g in listed.groups)))
            for g in resp.groups:
                offs = out.setdefault(g.group_id, {})  # an error: kept, not taken as deleted
                if g.error_code != ErrorCode.none:
                    continue
                for t in g.topics:
                    for pr in t.partitions:
                        if pr.error_code == ErrorCode.none and pr.committed_offset >= 0:
                            offs[(t.name, pr.partition_index)] = pr.committed_offset
        return out

    # ------------------------------------------------------------ waiting
    def wait(self, timeout: float, topics: dict[str, dict], positions=None,
             stop: threading.Event | None = None) -> None:
        """A long-poll Fetch from ``positions`` (on each leader broker in turn, sharing
        ``timeout``): back when a leader appended, or after ``timeout``. A leader that went
        away ends the wait at once (the next pass reports it); with nothing to fetch it
        sleeps until ``timeout`` or ``stop``."""
        by_node: dict[int, list[tuple[str, int, int]]] = {}
        for (t, p), off in (positions or {}).items():
            node = self._leaders.get((t, p))
            if t in topics and node is not None:
                by_node.setdefault(node, []).append((t, p, off))
        if not by_node:
            (stop or threading.Event()).wait(timeout)
            return
        share = max(int(timeout * 1000) // len(by_node), 50)
        for node, wants in by_node.items():
            try:
                resp = self._fetch(node, wants, 1, share, 1)
            except FslogError:
                return
            if any(pd.records or pd.error_code != ErrorCode.none
                   for t in resp.responses for pd in t.partitions):
                return

    def close(self) -> None:
        for node in list(self._conns):
            self._drop(node)

    def interrupt(self) -> None:
        """Unblock the request another thread waits on (its connections are shut down;
        it gets ``LeaderUnavailableError``)."""
        for c in list(self._conns.values()):
            c.shutdown()

    # ------------------------------------------------------------ a second view
    def twin(self) -> NetworkLeader:
        """Another leader object on connections of its own (for another thread)."""
        t = NetworkLeader.__new__(NetworkLeader)
        t.bootstrap = list(self.bootstrap)
        t.security = self.security
        t._given_replica_id = self._given_replica_id
        t.replica_id = self.replica_id
        t.cluster_id = None
        t._conns, t._brokers, t._leaders, t._parts = {}, {}, {}, {}
        return t

    def metadata(self) -> tuple:
        """The cluster as the last ``topics()`` saw it, for ``adopt`` by a twin."""
        return (self.cluster_id, self.replica_id, dict(self._brokers), dict(self._leaders))

    def adopt(self, metadata: tuple) -> None:
        """Take the cluster as a twin's ``topics()`` saw it (``metadata()``): the brokers,
        each partition's leader, the cluster id and so who we are."""
        self.cluster_id, self.replica_id, brokers, leaders = metadata
        for n in [n for n in self._conns if n != _BOOTSTRAP and brokers.get(n) != self._brokers.get(n)]:
            self._drop(n)  # a broker gone or moved
        self._brokers = dict(brokers)
        self._leaders = dict(leaders)


ServeLeader = NetworkLeader  # the name it had while it only spoke to fslog serve


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"


def _whole_batches(records) -> memoryview:
    """The complete batches at the start of ``records`` (a broker may cut the last one):
    a view, not a copy."""
    from ..records import batch as rb
    pos = 0
    n = len(records)
    while n - pos >= rb.LOG_OVERHEAD:
        _base, length = rb.peek_offset_and_length(records, pos)
        if pos + rb.LOG_OVERHEAD + length > n:
            break
        pos += rb.LOG_OVERHEAD + length
    return memoryview(records)[:pos]
