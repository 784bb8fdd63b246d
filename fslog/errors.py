"""One exception hierarchy for fslog.

Every message says what went wrong, where (file, byte position, offset, line number)
and, where there is one, what to do next. The CLI prints ``str(error)`` on one line
and exits 1; the library never prints and never exits.
"""

from __future__ import annotations


class FslogError(Exception):
    """Base class of every error fslog raises on purpose."""


class UsageError(FslogError):
    """Wrong use of the command line or the API: options that cannot go together, a
    malformed argument. The CLI exits 2 for it (1 for every other error)."""


class InvalidNameError(FslogError):
    """A topic, group or other name that fslog refuses before touching any file."""


class TopicExistsError(FslogError):
    pass


class UnknownTopicError(FslogError):
    pass


class ConfigError(FslogError):
    """An unknown configuration key or a value of the wrong kind."""


class RecordTooLargeError(FslogError):
    pass


class CorruptRecordError(FslogError):
    """Bytes in the middle of a log that are not a valid batch.

    ``path``, ``position`` and ``offset`` name the place (offset may be None when the
    batch header itself is unreadable).
    """

    def __init__(self, message: str, path: str | None = None, position: int | None = None,
                 offset: int | None = None):
        super().__init__(message)
        self.path = path
        self.position = position
        self.offset = offset


class GroupDeletedError(FslogError):
    """The consumer group was deleted while a member of it was running."""


class UnsupportedCompressionError(CorruptRecordError):
    """A batch whose attributes name a compression codec Kafka does not define (5-7):
    Kafka's UNSUPPORTED_COMPRESSION_TYPE."""


class OffsetOutOfRangeError(FslogError):
    pass


class NotLeaderError(FslogError):
    """An append to a root that follows another (``fslog replicate``): Kafka's
    NOT_LEADER_OR_FOLLOWER."""


class ReplicationError(FslogError):
    """A follower that cannot go on as asked: a batch that does not continue its log, a
    leader whose log diverged in a way leader epochs cannot settle, a root that would follow
    itself."""


class LeaderUnavailableError(ReplicationError):
    """A follower's leader cannot be reached (not running, connection lost): a following
    follower retries."""


class InvalidInputError(FslogError):
    """A line of producer input that cannot become a record."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class UnsafePathError(FslogError):
    """A path under the root that is a symlink or otherwise points outside the root."""


class UnreadableOffsetError(FslogError):
    """A committed-offset file that cannot be read (damaged, hand-edited, a link).

    ``path``, ``topic`` and ``partition`` name it; ``fslog group reset`` replaces it.
    """

    def __init__(self, message: str, path: str | None = None, topic: str | None = None,
                 partition: int | None = None):
        super().__init__(message)
        self.path = path
        self.topic = topic
        self.partition = partition


class CommandFailedError(FslogError):
    """A command run for records (``--exec``) failed for good, with no dead-letter topic.

    ``topic``, ``partition`` and ``offset`` name the first record of the failed batch;
    it is not committed, so the next run starts with it.
    """

    def __init__(self, message: str, topic: str | None = None, partition: int | None = None,
                 offset: int | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.exit_code = exit_code
