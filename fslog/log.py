"""The root directory: Kafka's LogManager. Creates, lists, opens and deletes topics.

Topic creation is atomic: the topic is assembled in ``ROOT/tmp/`` and renamed into
``ROOT/topics/``, so a concurrent reader or a second creator sees either no topic or a
complete one; deletion renames it into ``ROOT/tmp/`` first. Neither ``ROOT/topics`` nor
``ROOT/tmp`` may be a symbolic link (checked before anything is created or moved through
them). Safe to use from any number of processes.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable

from .config import parse_config
from .errors import FslogError, NotLeaderError, TopicExistsError, UnknownTopicError
from .storage import files
from .storage.cleaner import clean_partition
from .storage.topic import Topic
from .storage.topicmeta import MAX_PARTITIONS, new_topic_id, write_topic_meta
from .storage.verify import verify_topic

if TYPE_CHECKING:
    from .reports import CleanReport, VerifyReport

_REPORTS = ("PartitionCleaned", "CleanReport", "TopicVerified", "VerifyReport")


def __getattr__(name: str) -> Any:
    """The report classes, from ``fslog.reports`` (imported on first use: defining
    dataclasses costs every start of ``fslog``, and only clean and verify use them)."""
    if name in _REPORTS:
        from . import reports
        return getattr(reports, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")



class Log:
    """``Log(root)``: the entry point of the library. ``root=None`` uses the default root."""

    def __init__(self, root: str | None = None):
        self.root = os.path.abspath(os.path.expanduser(root or files.default_root()))
        try:
            files.makedirs(self.root)
            # ROOT/topics and ROOT/tmp are checked (never a link) before anything is made in them
            for d in (files.topics_dir(self.root), files.tmp_dir(self.root)):
                files.ensure_dir(d, self.root)
        except OSError as e:
            raise FslogError(f"cannot create the fslog root {self.root}: {e.strerror}") from None

    def __repr__(self) -> str:
        return f"Log({self.root!r})"

    def topics(self) -> list[str]:
        names = []
        for name in sorted(os.listdir(files.topics_dir(self.root))):
            try:
                files.validate_name(name)
            except FslogError:
                continue
            if os.path.isfile(os.path.join(files.topics_dir(self.root), name, files.TOPIC_CONFIG_FILE)):
                names.append(name)
        return names

    def topic(self, name: str) -> Topic:
        return Topic(self.root, name)

    def exists(self, name: str) -> bool:
        files.validate_name(name, "topic")
        return os.path.lexists(files.topic_dir(self.root, name))

    def create_topic(self, name: str, partitions: int = 1, config: dict | None = None,
                     if_not_exists: bool = False) -> Topic:
        files.validate_name(name, "topic")
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise FslogError(f"--partitions {partitions}: use a number from 1 to {MAX_PARTITIONS}")
        overrides = parse_config(dict(config or {}))
        final = files.topic_dir(self.root, name)
        if os.path.lexists(final):
            if if_not_exists:
                return self.topic(name)
            raise TopicExistsError(f"topic {name!r} already exists (use --if-not-exists to accept that)")
        staging = os.path.join(files.tmp_dir(self.root), f"create-{os.getpid()}-{time.monotonic_ns()}")
        files.ensure_dir(files.topics_dir(self.root), self.root)
        files.ensure_dir(staging, self.root)
        try:
            # the id tells this topic from one of the same name deleted before (Kafka's
            # topic id): committed offsets of another incarnation are never used
            write_topic_meta(staging, partitions, overrides, new_topic_id(), int(time.time() * 1000))
            for i in range(partitions):
                os.mkdir(os.path.join(staging, files.partition_dir_name(name, i)), files.DIR_MODE)
            files.fsync_dir(staging)
            try:
                os.rename(staging, final)
            except OSError:
                if os.path.lexists(final):
                    if if_not_exists:
                        return self.topic(name)
                    raise TopicExistsError(
                        f"topic {name!r} already exists (use --if-not-exists to accept that)") from None
                raise
            files.fsync_dir(files.topics_dir(self.root))
        finally:
            if os.path.isdir(staging):
                _rmtree(staging, ignore_errors=True)
        topic = self.topic(name)
        topic.created = True  # this call created it (not a concurrent creator)
        return topic

    def delete_topic(self, name: str) -> None:
        files.validate_name(name, "topic")
        path = files.topic_dir(self.root, name)
        if not os.path.lexists(path):
            raise UnknownTopicError(f"topic {name!r} does not exist in {self.root}")
        if os.path.islink(path):
            os.unlink(path)  # never follow a link out of the root
            return
        files.ensure_dir(files.tmp_dir(self.root), self.root)
        trash = os.path.join(files.tmp_dir(self.root), files.fit_name(
            f"delete-{name}", f"-{os.getpid()}-{time.monotonic_ns()}"))
        os.rename(path, trash)
        files.fsync_dir(files.topics_dir(self.root))
        _rmtree(trash, ignore_errors=True)

    def clean(self, topics: str | list[str] | None = None, compact_now: bool = False,
              on_progress: Callable[[int, int], None] | None = None) -> CleanReport:
        """Apply the cleanup.policy of ``topics`` (a name, names, or None: every topic) now:
        retention and compaction (``storage/cleaner.py``). A topic named explicitly that
        cannot be opened raises; otherwise a topic or partition that fails is reported in
        ``errors`` and the others are cleaned. ``on_progress(done, total)`` after each
        partition. Refused (``NotLeaderError``) on a follower root: it copies its
        leader's retention and compaction, and cleaning it too would make it differ."""
        if os.path.exists(files.follower_file(self.root)):
            raise NotLeaderError(
                f"{self.root} is a follower (fslog replicate): it copies its leader's "
                f"retention and compaction, and cleaning it here would make it differ; run "
                f"'fslog clean' on the leader (or 'fslog promote' this root first)")
        names = [topics] if isinstance(topics, str) else list(topics or [])
        from .reports import CleanReport, PartitionCleaned
        report = CleanReport(names or self.topics())
        work = []
        for n in report.topics:
            try:
                work.extend(self.topic(n).partitions())
            except FslogError as e:
                if names:
                    raise
                report.errors.append(str(e))  # one broken topic must not stop the others
        for i, p in enumerate(work):
            try:
                done = clean_partition(p, force_compaction=compact_now)
                assert done is not None  # (it waits for another cleaner)
                report.partitions.append(PartitionCleaned(**done))
            except FslogError as e:
                report.errors.append(str(e))
            if on_progress is not None:
                on_progress(i + 1, len(work))
        return report

    def verify(self, topic: str | None = None, repair: bool = False) -> VerifyReport:
        """Check ``topic`` (None: every topic): every batch, offset and index
        (``storage/verify.py``); with ``repair``, truncate torn tails and rebuild indexes.
        The topic named cannot be opened: raises; any other: reported as a problem."""
        names = [topic] if topic else self.topics()
        from .reports import TopicVerified, VerifyReport
        report = VerifyReport()
        for n in names:
            try:
                t = self.topic(n)
            except FslogError as e:  # an unreadable topic.json: report it, check the others
                if n == topic:
                    raise
                report.topics.append(TopicVerified(n, [], 0, 0, [{
                    "kind": "topic", "path": None, "position": None, "offset": None,
                    "message": str(e)}], []))
                continue
            report.topics.append(TopicVerified(**verify_topic(t, repair=repair)))
        return report

    def producer(self, topic: str, **kwargs):
        from .clients.producer import Producer
        return Producer(self, topic, **kwargs)

    def reader(self, topic: str, **kwargs):
        from .storage.reader import TopicReader
        return TopicReader(self.topic(topic), **kwargs)


def _rmtree(path: str, ignore_errors: bool = False) -> None:
    import shutil  # (on first use: shutil costs every start of fslog)
    shutil.rmtree(path, ignore_errors=ignore_errors)
