"""Topic configuration: Kafka's keys, defaults and validation.

Stored in ``topic.json`` beside the partitions as overrides only; everything else takes
the default below. Values are validated when set, with messages that list what is valid.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from .errors import ConfigError

DAY_MS = 24 * 3600 * 1000


def _int(minimum: int, allow_minus_one: bool = False) -> Callable[[str, object], int]:
    def parse(key: str, raw: object) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ConfigError(f"config {key}={raw!r}: expected a whole number") from None
        if allow_minus_one and value == -1:
            return value
        if value < minimum:
            extra = " or -1" if allow_minus_one else ""
            raise ConfigError(f"config {key}={raw!r}: must be at least {minimum}{extra}")
        return value
    return parse


def _ratio(key: str, raw: object) -> float:
    try:
        value = float(str(raw))
    except ValueError:
        raise ConfigError(f"config {key}={raw!r}: expected a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"config {key}={raw!r}: expected a number between 0 and 1")
    return value


def _policy(key: str, raw: object) -> str:
    parts = sorted({p.strip() for p in str(raw).split(",") if p.strip()})
    if not parts or any(p not in ("delete", "compact") for p in parts):
        raise ConfigError(
            f"config {key}={raw!r}: expected 'delete', 'compact' or 'compact,delete'")
    return ",".join(parts)


COMPRESSION_TYPES = ("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")


def _compression_type(key: str, raw: object) -> str:
    value = str(raw).strip().lower()
    if value not in COMPRESSION_TYPES:
        raise ConfigError(f"config {key}={raw!r}: expected one of {', '.join(COMPRESSION_TYPES)}")
    return value


def _timestamp_type(key: str, raw: object) -> str:
    value = str(raw).strip()
    if value not in ("CreateTime", "LogAppendTime"):
        raise ConfigError(f"config {key}={raw!r}: expected 'CreateTime' or 'LogAppendTime'")
    return value


class ConfigKey(NamedTuple):
    name: str
    default: object
    parse: Callable[[str, object], object]
    doc: str


KEYS: dict[str, ConfigKey] = {k.name: k for k in [
    ConfigKey("segment.bytes", 1 << 30, _int(1024),
              "roll to a new segment when the active one would exceed this size"),
    ConfigKey("segment.ms", 7 * DAY_MS, _int(1),
              "roll when a new record is this much newer than the active segment's first"),
    ConfigKey("retention.ms", 7 * DAY_MS, _int(0, allow_minus_one=True),
              "delete segments whose newest record is older than this (-1: forever)"),
    ConfigKey("retention.bytes", -1, _int(0, allow_minus_one=True),
              "delete oldest segments while a partition is larger than this (-1: no limit)"),
    ConfigKey("cleanup.policy", "delete", _policy, "delete, compact, or compact,delete"),
    ConfigKey("delete.retention.ms", DAY_MS, _int(0),
              "how long tombstones are kept by compaction"),
    ConfigKey("min.cleanable.dirty.ratio", 0.5, _ratio,
              "compact when this share of the log is not yet compacted"),
    ConfigKey("max.message.bytes", 1048588, _int(64),
              "largest record batch a producer may append (a record must fit in one)"),
    ConfigKey("index.interval.bytes", 4096, _int(0),
              "bytes between offset-index entries"),
    ConfigKey("compression.type", "producer", _compression_type,
              "codec of the batches producers write: producer (each producer's own "
              "--compression), uncompressed, gzip, snappy, lz4 or zstd"),
    ConfigKey("flush.ms", 1000, _int(0),
              "fslog serve: fsync a partition within this many ms of an acks=0/1 append"),
    ConfigKey("message.timestamp.type", "CreateTime", _timestamp_type,
              "fslog serve: CreateTime keeps producers' timestamps, LogAppendTime sets the "
              "append time"),
    ConfigKey("min.insync.replicas", 1, _int(1),
              "fslog serve, acks=all: replicas (the leader and in-sync followers) that must "
              "hold a batch before it is acknowledged"),
    ConfigKey("log.cleaner.dedupe.buffer.size", 128 << 20, _int(1 << 16),
              "memory for compaction's offset map (more keys: several passes)"),
    ConfigKey("log.cleaner.backoff.ms", 15000, _int(0),
              "a roll within this many ms of a partition's last compaction puts the next "
              "one off to the producer's close or a later roll (0: never)"),
]}


def valid_keys_text() -> str:
    return ", ".join(sorted(KEYS))


def parse_config(pairs: dict[str, object]) -> dict[str, object]:
    """Validate overrides; return them parsed to their types."""
    out: dict[str, object] = {}
    for key, raw in pairs.items():
        spec = KEYS.get(key)
        if spec is None:
            raise ConfigError(f"unknown config key {key!r}: valid keys are {valid_keys_text()}")
        out[key] = spec.parse(key, raw)
    return out


def parse_assignments(items: list[str]) -> dict[str, object]:
    """``["segment.bytes=4096", ...]`` from the command line → validated overrides."""
    pairs: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--config {item!r}: expected KEY=VALUE, e.g. segment.bytes=1048576")
        pairs[key.strip()] = value.strip()
    return parse_config(pairs)


class TopicConfig:
    """Effective configuration: overrides over defaults. Attribute-style access."""

    def __init__(self, overrides: dict[str, object] | None = None):
        self.overrides = parse_config(dict(overrides or {}))

    def get(self, key: str):
        if key in self.overrides:
            return self.overrides[key]
        return KEYS[key].default

    def effective(self) -> dict[str, object]:
        return {k: self.get(k) for k in sorted(KEYS)}

    @property
    def compacted(self) -> bool:
        """cleanup.policy includes compact (compact, or compact,delete)."""
        return "compact" in self.get("cleanup.policy").split(",")

    @property
    def segment_bytes(self) -> int:
        return self.get("segment.bytes")

    @property
    def segment_ms(self) -> int:
        return self.get("segment.ms")

    @property
    def max_message_bytes(self) -> int:
        return self.get("max.message.bytes")

    @property
    def index_interval_bytes(self) -> int:
        return self.get("index.interval.bytes")
