"""A leader reached over Kafka's protocol (``fslog serve``, HOST:PORT): the source
interface of ``source.py`` on top of ``wire.py``.

- topics: Metadata v12 (partition counts) and DescribeConfigs v4 (overrides: the entries
  whose source is a topic config); a server without DescribeConfigs gives {} (defaults).
  Kafka's topic ids are not used (fslog serve sends none): a topic deleted and created
  again under the same name is caught by the last-batch check of ``follower.py``.
- partition state: ListOffsets v7 (earliest, latest) as the follower (replica id); the
  leader's segment base offsets are not on the wire, so the follower rolls by the topic's
  segment.bytes and segment.ms — the leader's, copied with the config — which, applied to
  the same batches, roll where the leader rolled.
- data: Fetch v12 with the follower's replica id (Kafka's replica fetcher), whole batches.
- divergence: OffsetForLeaderEpoch v4.
- groups' committed offsets: ListGroups and OffsetFetch when the server answers them;
  otherwise none are copied.
- waiting: a long-poll Fetch (min_bytes 1) from the follower's positions.

Not thread-safe; one connection, reopened after an error.
"""

from __future__ import annotations

import datetime

from kio.schema.errors import ErrorCode

from ..errors import FslogError
from .source import LeaderPartition
from .wire import Connection, parse_address

_TOPIC_RESOURCE = 2
_TOPIC_CONFIG_SOURCE = 1  # DYNAMIC_TOPIC_CONFIG: an override of this topic
_EARLIEST, _LATEST = -2, -1


class ServeLeader:
    def __init__(self, address: str, replica_id: int = 1):
        self.host, self.port = parse_address(address)
        self.replica_id = replica_id
        self._conn: Connection | None = None
        self._parts: dict[str, int] = {}
        self._positions: dict[tuple[str, int], int] = {}
        self._configs_supported = True
        self._groups_supported = True
        self.conn()  # fail now, with one line, if nobody listens there

    def describe(self) -> str:
        return f"{self.host}:{self.port}"

    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = Connection(self.host, self.port)
        return self._conn

    def _request(self, req):
        try:
            return self.conn().request(req)
        except FslogError:
            self.close()
            raise

    # ------------------------------------------------------------ metadata
    def topics(self) -> dict[str, dict]:
        from kio.schema.metadata.v12.request import MetadataRequest
        resp = self._request(MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                             include_topic_authorized_operations=False))
        out = {}
        for t in resp.topics:
            if t.error_code != ErrorCode.none or t.is_internal:
                continue
            out[t.name] = {"partitions": len(t.partitions), "config": {}, "id": None}
        self._parts = {n: m["partitions"] for n, m in out.items()}
        if out and self._configs_supported:
            try:
                for name, cfg in self._configs(list(out)).items():
                    out[name]["config"] = cfg
            except FslogError:
                self._configs_supported = False  # the server closed on an API it lacks
        return out

    def _configs(self, names: list[str]) -> dict[str, dict]:
        from kio.schema.describe_configs.v4 import request as dc

        from ..config import parse_config
        resp = self._request(dc.DescribeConfigsRequest(resources=tuple(
            dc.DescribeConfigsResource(resource_type=_TOPIC_RESOURCE, resource_name=n,
                                       configuration_keys=None) for n in names)))
        out = {}
        for r in resp.results:
            if r.error_code != ErrorCode.none:
                continue
            raw = {c.name: c.value for c in r.configs
                   if c.config_source == _TOPIC_CONFIG_SOURCE and c.value is not None}
            try:
                out[r.resource_name] = parse_config(raw)
            except FslogError:
                out[r.resource_name] = {}
        return out

    def partition_state(self, topic: str, p: int) -> LeaderPartition:
        from kio.schema.list_offsets.v7 import request as lo
        got = {}
        for ts in (_EARLIEST, _LATEST):
            resp = self._request(lo.ListOffsetsRequest(
                replica_id=self.replica_id, isolation_level=0, topics=(lo.ListOffsetsTopic(
                    name=topic, partitions=(lo.ListOffsetsPartition(partition_index=p,
                                                                    timestamp=ts),)),)))
            r = resp.topics[0].partitions[0]
            if r.error_code != ErrorCode.none:
                raise FslogError(f"{self.describe()}: {topic}/{p}: {r.error_code.name}")
            got[ts] = r.offset
        start, end = got[_EARLIEST], got[_LATEST]
        return LeaderPartition(start, end, [start], {}, [(-1, start)], 0)

    def end_offset_for_epoch(self, topic: str, p: int, epoch: int) -> tuple[int, int]:
        from kio.schema.offset_for_leader_epoch.v4 import request as oe
        resp = self._request(oe.OffsetForLeaderEpochRequest(
            replica_id=self.replica_id, topics=(oe.OffsetForLeaderTopic(
                topic=topic, partitions=(oe.OffsetForLeaderPartition(
                    partition=p, leader_epoch=epoch),)),)))
        r = resp.topics[0].partitions[0]
        if r.error_code != ErrorCode.none:
            raise FslogError(f"{self.describe()}: OffsetForLeaderEpoch {topic}/{p}: "
                             f"{r.error_code.name}")
        return r.leader_epoch, r.end_offset

    def latest_epoch(self, topic: str, p: int) -> int:
        return self.end_offset_for_epoch(topic, p, 0x7FFFFFFF)[0]

    # ------------------------------------------------------------ data
    def _fetch(self, wants: list[tuple[str, int, int]], max_bytes: int, wait_ms: int,
               min_bytes: int):
        from kio.schema.fetch.v12 import request as fr
        by_topic: dict[str, list] = {}
        for t, p, off in wants:
            by_topic.setdefault(t, []).append(fr.FetchPartition(
                partition=p, fetch_offset=off, partition_max_bytes=max_bytes))
        return self._request(fr.FetchRequest(
            replica_id=self.replica_id, max_wait=datetime.timedelta(milliseconds=wait_ms),
            min_bytes=min_bytes, topics=tuple(fr.FetchTopic(topic=t, partitions=tuple(ps))
                                              for t, ps in by_topic.items()),
            forgotten_topics_data=()))

    def fetch(self, topic: str, p: int, offset: int, max_bytes: int):
        resp = self._fetch([(topic, p, offset)], max_bytes, 0, 0)
        self._positions[(topic, p)] = offset
        for t in resp.responses:
            for pd in t.partitions:
                if pd.error_code == ErrorCode.offset_out_of_range:
                    return bytearray(), None
                if pd.error_code != ErrorCode.none:
                    raise FslogError(f"{self.describe()}: fetch {topic}/{p} at {offset}: "
                                     f"{pd.error_code.name}")
                return _whole_batches(pd.records or b""), None
        return bytearray(), None

    def committed_offsets(self) -> dict[str, dict[tuple[str, int], int]]:
        if not self._groups_supported:
            return {}
        from kio.schema.list_groups.v4.request import ListGroupsRequest
        from kio.schema.offset_fetch.v8 import request as of
        try:
            groups = self._request(ListGroupsRequest(states_filter=())).groups
            if not groups:
                return {}
            resp = self._request(of.OffsetFetchRequest(groups=tuple(
                of.OffsetFetchRequestGroup(group_id=g.group_id, topics=None) for g in groups)))
        except FslogError:
            self._groups_supported = False
            return {}
        out = {}
        for g in resp.groups:
            offs = {}
            for t in g.topics:
                for pr in t.partitions:
                    if pr.error_code == ErrorCode.none and pr.committed_offset >= 0:
                        offs[(t.name, pr.partition_index)] = pr.committed_offset
            out[g.group_id] = offs
        return out

    def wait(self, timeout: float, topics: dict[str, dict], positions=None) -> None:
        wants = [(t, p, off) for (t, p), off in (positions or {}).items() if t in topics]
        if not wants:
            import time
            time.sleep(timeout)
            return
        try:
            self._fetch(wants, 1, int(timeout * 1000), 1)
        except FslogError:
            import time
            time.sleep(timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _whole_batches(records: bytes) -> bytearray:
    """The complete batches at the start of ``records`` (a broker may cut the last one)."""
    from ..records import batch as rb
    pos = 0
    n = len(records)
    while n - pos >= rb.LOG_OVERHEAD:
        _base, length = rb.peek_offset_and_length(records, pos)
        if pos + rb.LOG_OVERHEAD + length > n:
            break
        pos += rb.LOG_OVERHEAD + length
    return bytearray(records[:pos])
