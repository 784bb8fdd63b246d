"""fslog: Apache Kafka's model over a log kept in ordinary files.

    from fslog import Log
    log = Log("/path/to/root")            # or Log() for the default root
    with log.producer("orders") as p:
        p.send(b'{"id": 1}', key=b"user-1")
    for rec in log.reader("orders"):
        print(rec.offset, rec.value)

Names are imported on first use (PEP 562), so that ``import fslog`` — and every CLI
command — loads only the modules it needs.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Log": "log", "Topic": "storage.topic", "Partition": "storage.partition",
    "Producer": "clients.producer", "TopicReader": "storage.reader",
    "PartitionReader": "storage.reader", "ConsumerRecord": "storage.reader",
    "Record": "records.batch", "TopicConfig": "config", "Consumer": "clients.consumer",
    "GroupConsumer": "clients.consumer",
    "FslogError": "errors", "ConfigError": "errors", "CorruptRecordError": "errors",
    "InvalidInputError": "errors", "InvalidNameError": "errors",
    "OffsetOutOfRangeError": "errors", "RecordTooLargeError": "errors",
    "TopicExistsError": "errors", "UnknownTopicError": "errors", "UnsafePathError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fslog' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
