"""The API-version table: every Kafka API fslog serve answers, and which versions.

One row per API key: (name, lowest version advertised, lowest version handled, highest
version). ApiVersions answers with (advertised minimum, highest); a request below the
lowest handled version, above the highest, or of a key not listed here is refused
(``connection.py`` closes the connection with one log line, as Kafka does; ApiVersions
itself answers an unsupported version with a v0 body, error 35 and this table).

Produce advertises a minimum of 0 while handling 3 and up: librdkafka before 2.11.1
(e.g. Debian's kcat) turns off gzip, snappy and lz4 when the advertised minimum of
Produce is above 0; every client that can speak v3 (RecordBatch v2) picks it anyway.

To answer a new API: add its row here and a handler module (see ``__init__.py``).
Read-only after import; safe from any thread.
"""

from __future__ import annotations

from typing import NamedTuple


class ApiRange(NamedTuple):
    name: str
    advertised_min: int
    min_version: int
    max_version: int

    def handles(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version


# api key -> range. Keep in key order; docs/serve.md lists the same table.
API_VERSIONS: dict[int, ApiRange] = {
    0: ApiRange("Produce", 0, 3, 9),
    1: ApiRange("Fetch", 4, 4, 12),
    2: ApiRange("ListOffsets", 1, 1, 7),
    3: ApiRange("Metadata", 0, 0, 12),
    8: ApiRange("OffsetCommit", 2, 2, 8),
    9: ApiRange("OffsetFetch", 1, 1, 8),
    10: ApiRange("FindCoordinator", 0, 0, 4),
    11: ApiRange("JoinGroup", 0, 0, 7),
    12: ApiRange("Heartbeat", 0, 0, 4),
    13: ApiRange("LeaveGroup", 0, 0, 5),
    14: ApiRange("SyncGroup", 0, 0, 5),
    15: ApiRange("DescribeGroups", 0, 0, 5),
    16: ApiRange("ListGroups", 0, 0, 4),
    17: ApiRange("SaslHandshake", 0, 0, 1),
    18: ApiRange("ApiVersions", 0, 0, 4),
    19: ApiRange("CreateTopics", 2, 2, 7),
    20: ApiRange("DeleteTopics", 1, 1, 6),
    22: ApiRange("InitProducerId", 0, 0, 4),
    23: ApiRange("OffsetForLeaderEpoch", 2, 2, 4),
    32: ApiRange("DescribeConfigs", 1, 1, 4),
    36: ApiRange("SaslAuthenticate", 0, 0, 2),
    42: ApiRange("DeleteGroups", 0, 0, 2),
    44: ApiRange("IncrementalAlterConfigs", 0, 0, 1),
}


def supported(api_key: int, version: int) -> bool:
    r = API_VERSIONS.get(api_key)
    return r is not None and r.handles(version)


def api_name(api_key: int) -> str:
    r = API_VERSIONS.get(api_key)
    if r is not None:
        return r.name
    try:
        from kio.schema.index import api_key_map
        return api_key_map[api_key]
    except (ImportError, KeyError):
        return f"api key {api_key}"
