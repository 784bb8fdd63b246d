"""The responses serve encodes by hand — Fetch (``fetch.encode_response``: batches
written as read, never joined) and Produce (``produce.encode_response``) — are byte for
byte what kio, the codec generated from Kafka's schemas, encodes for every version
served (Fetch 4-12, Produce 3-9)."""

from __future__ import annotations

import datetime

import pytest
from kio.schema.errors import ErrorCode

from fslog.broker import protocol
from fslog.broker.fetch import _Part, encode_response
from fslog.records import batch as rb


def _parts():
    a = rb.encode_values([b"one", b"two"], 1_700_000_000_000)
    b = rb.encode_values([b"three"], 1_700_000_000_001, base_offset=2)
    p0 = _Part("orders", 0, 0, 1 << 20)
    p0.records, p0.size, p0.hw, p0.start = [bytes(a), bytes(b)], len(a) + len(b), 3, 0
    p1 = _Part("orders", 1, 7, 1 << 20)
    p1.code, p1.hw, p1.start = ErrorCode.offset_out_of_range, 5, 2
    p2 = _Part("t\u00e9", 0, 0, 1 << 20)  # a name kio encodes as UTF-8 too
    p2.hw, p2.start = 0, 0
    return {"orders": [p0, p1], "t\u00e9": [p2]}


@pytest.mark.parametrize("version", range(4, 13))
@pytest.mark.parametrize("read_committed", [False, True])
def test_hand_encoded_fetch_response_is_kios(version, read_committed):
    by_topic = _parts()
    cls = protocol.response_class(1, version)
    topic_cls = protocol.nested(cls, "FetchableTopicResponse")
    part_cls = protocol.nested(cls, "PartitionData")
    want = protocol.encode_response(77, protocol.build(
        cls, throttle_time=datetime.timedelta(0), error_code=ErrorCode.none, session_id=0,
        responses=tuple(protocol.build(topic_cls, topic=name, partitions=tuple(
            protocol.build(part_cls, partition_index=p.index, error_code=p.code,
                           high_watermark=p.hw, last_stable_offset=p.hw,
                           log_start_offset=p.start,
                           aborted_transactions=() if read_committed else None,
                           preferred_read_replica=-1, records=b"".join(p.records))
            for p in ps)) for name, ps in by_topic.items())))
    got = encode_response(version, 77, by_topic, read_committed)
    assert b"".join(got) == want
    # the batches are handed over as they were read, not copied into one buffer
    assert any(part is by_topic["orders"][0].records[0] for part in got)


@pytest.mark.parametrize("version", range(3, 10))
def test_hand_encoded_produce_response_is_kios(version):
    from fslog.broker.produce import _Result
    from fslog.broker.produce import encode_response as encode_produce
    ok = _Result(base=41)
    ok.log_start = 3
    lat = _Result(base=7)
    lat.log_append_time, lat.log_start = 1_700_000_000_123, 0
    bad = _Result(ErrorCode.corrupt_message, message="CRC mismatch \u00e9")
    results = [("orders", [(0, ok), (2, bad)]), ("logs", [(1, lat)])]
    cls = protocol.response_class(0, version)
    topic_cls = protocol.nested(cls, "TopicProduceResponse")
    part_cls = protocol.nested(cls, "PartitionProduceResponse")

    def when(r):
        if r.log_append_time < 0:
            return None
        return datetime.datetime.fromtimestamp(r.log_append_time / 1000, datetime.UTC)
    want = protocol.encode_response(5, protocol.build(
        cls, throttle_time=datetime.timedelta(0), responses=tuple(
            protocol.build(topic_cls, name=name, partition_responses=tuple(
                protocol.build(part_cls, index=i, error_code=r.code, base_offset=r.base,
                               log_append_time=when(r), log_start_offset=r.log_start,
                               record_errors=(), error_message=r.message)
                for i, r in parts)) for name, parts in results)))
    assert encode_produce(version, 5, results) == want
