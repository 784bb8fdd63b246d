"""fslog: Apache Kafka's model over a log kept in ordinary files.

    from fslog import Log
    log = Log("/path/to/root")            # or Log() for the default root
    with log.producer("orders") as p:
        p.send(b'{"id": 1}', key=b"user-1")
    for rec in log.reader("orders"):
        print(rec.offset, rec.value)
"""

from .batch import Record
from .config import TopicConfig
from .errors import (ConfigError, CorruptRecordError, FslogError, InvalidInputError,
                     InvalidNameError, OffsetOutOfRangeError, RecordTooLargeError,
                     TopicExistsError, UnknownTopicError, UnsafePathError)
from .log import Log
from .partition import Partition
from .producer import Producer
from .reader import ConsumerRecord, PartitionReader, TopicReader
from .topic import Topic

__version__ = "0.1.0"

__all__ = [
    "Log", "Topic", "Partition", "Producer", "TopicReader", "PartitionReader",
    "ConsumerRecord", "Record", "TopicConfig",
    "FslogError", "ConfigError", "CorruptRecordError", "InvalidInputError",
    "InvalidNameError", "OffsetOutOfRangeError", "RecordTooLargeError", "TopicExistsError",
    "UnknownTopicError", "UnsafePathError", "__version__",
]
