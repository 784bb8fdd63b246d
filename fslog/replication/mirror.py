"""``fslog mirror TOPIC... --to BOOTSTRAP``: push local topics into a Kafka cluster (or any
Kafka-protocol endpoint, e.g. another ``fslog serve``), as Kafka's MirrorMaker does.

Records keep their key, value, headers and timestamp. A record goes to the partition of
the same number when the remote topic has as many partitions as the local one (created so
when it is missing), else to the partition murmur2 of its key picks (librdkafka's
``murmur2_random``: Kafka's Java partitioner; keyless records spread at random). The
producer is librdkafka's (confluent-kafka), idempotent, acks=all.

Progress is a consumer group of the local root (``--group``, default ``fslog-mirror``):
its committed offsets say where each partition stands (``fslog group describe`` shows the
mirror's lag), committed only after the remote cluster acknowledged every record before.
Beside them, ``ROOT/groups/G/mirror.json`` holds, per partition, the remote log-end
offset at that commit. When partitions map one to one, a rerun after a kill -9 compares
it with the remote log-end offset now and skips the records that had already arrived:
nothing is sent twice (with murmur2 mapping a rerun may send again what arrived after the
last commit: at least once). One mirror per group at a time (``mirror.lock``).

The library never prints: events go to ``on_event``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ..errors import FslogError
from ..groups.registry import Registry
from ..storage import files
from ..storage.locks import ProcessLock
from ..storage.reader import PartitionReader
from .security import PLAINTEXT, ClientSecurity

MEMBER = "fslog-mirror"
CHUNK = 20000  # records between two flush-and-commit points


class Mirror:
    def __init__(self, log, topics: list[str], bootstrap: str, group: str = "fslog-mirror",
                 on_event=None, producer_config: dict | None = None,
                 security: ClientSecurity = PLAINTEXT):
        self.log = log
        self.topics = topics
        self.bootstrap = bootstrap
        self.on_event = on_event or (lambda ev: None)
        self.reg = Registry(log.root, group)
        self.group = group
        self._lock = ProcessLock(files.mirror_lock_path(self.reg.path))
        self._state_path = files.mirror_state_path(self.reg.path)
        self.sent = 0
        self.skipped = 0
        import logging
        quiet = logging.getLogger("fslog.mirror.librdkafka")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        # every client of the cluster: where, how (TLS, SASL), and librdkafka's own log
        # lines kept out of stderr (failures surface as one error)
        self._client_config: dict = {"bootstrap.servers": bootstrap, "logger": quiet,
                                     **security.librdkafka_config()}
        cfg = {**self._client_config, "enable.idempotence": True, "acks": "all",
               "partitioner": "murmur2_random", "linger.ms": 5,
               "queue.buffering.max.messages": 200000}
        cfg.update(producer_config or {})
        self._producer_config = cfg
        self._producer: Any = None  # a confluent_kafka.Producer from start() on (imported there)
        self._errors: list[str] = []

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        for t in self.topics:
            self.log.topic(t)  # UnknownTopicError, one line, before anything else
        if not self._lock.try_acquire():
            raise FslogError(f"group {self.group!r}: another 'fslog mirror' runs with it; one "
                             f"mirror per group (--group)")
        from confluent_kafka import Producer
        self._producer = Producer(self._producer_config)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)
        self._lock.release()

    # ------------------------------------------------------------ remote side
    def _metadata(self, topic: str):
        from confluent_kafka import KafkaException
        try:
            # all topics: asking for one by name makes a cluster that auto-creates topics
            # (auto.create.topics.enable) create it with its default partition count
            return self._producer.list_topics(timeout=15)
        except KafkaException as e:
            raise FslogError(f"cannot reach {self.bootstrap}: {e.args[0].str()}; is the "
                             f"cluster (or fslog serve) running there?") from None

    def _remote_partitions(self, topic: str, want: int) -> int:
        from confluent_kafka.admin import AdminClient, NewTopic
        md = self._metadata(topic)
        t = md.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            admin = AdminClient(dict(self._client_config))
            fut = admin.create_topics([NewTopic(topic, want)])[topic]
            try:
                fut.result(30)
                self.on_event({"event": "created", "topic": topic, "partitions": want})
            except Exception as e:  # exists meanwhile, or auto-created
                self.on_event({"event": "note", "message": f"create {topic}: {e}"})
            md = self._metadata(topic)
            t = md.topics.get(topic)
        if t is None or not t.partitions:
            raise FslogError(f"{self.bootstrap}: topic {topic!r} is not available there")
        return len(t.partitions)

    def _remote_end(self, topic: str, p: int) -> int:
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({**self._client_config, "group.id": f"{self.group}-probe",
                      "enable.auto.commit": False})
        try:
            _low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            return high
        finally:
            c.close()

    # ------------------------------------------------------------ state
    def _read_state(self) -> dict:
        try:
            with open(self._state_path, "rb") as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return {}

    def _write_state(self, state: dict) -> None:
        files.write_atomic(self._state_path, json.dumps(state, sort_keys=True).encode() + b"\n")

    # ------------------------------------------------------------ copying
    def run(self, stop: threading.Event | None = None, follow: bool = False) -> dict:
        stop = stop or threading.Event()
        state = self._read_state()
        plans = []
        for name in self.topics:
            t = self.log.topic(name)
            remote = self._remote_partitions(name, t.partition_count)
            same = remote == t.partition_count
            for p in t.partitions():
                plans.append((name, p, same))
        while True:
            for name, p, same in plans:
                self._mirror_partition(name, p, same, state, stop)
            if not follow or stop.is_set():
                break
            stop.wait(0.5)
        return {"bootstrap": self.bootstrap, "group": self.group, "records_sent": self.sent,
                "records_skipped_as_delivered": self.skipped}

    def _mirror_partition(self, name: str, p, same: bool, state: dict, stop) -> None:
        key = f"{name}/{p.number}"
        committed = self.reg.committed(name, p.number)
        start = committed if committed is not None else p.start_offset()
        skip = 0
        st = state.get(key)
        if same and st is not None:
            # mirror.json is written before the committed offset: it is the truth
            start = st["local"]
            skip = max(0, self._remote_end(name, p.number) - st["remote"])
        reader = PartitionReader(p, start)
        try:
            end = p.end_offset()
            while reader.next_offset < end and not stop.is_set():
                n = 0
                while n < CHUNK and reader.next_offset < end:
                    batches = reader.fetch(256 << 10)  # the reader moves past them all: send all
                    if not batches:
                        break
                    for fb in batches:
                        for r in fb.records():
                            if skip > 0:
                                skip -= 1
                                self.skipped += 1
                                continue
                            self._send(name, p.number if same else None, r)
                            n += 1
                self._commit(name, p.number, reader.next_offset, same, state)
                self.sent += n
        finally:
            reader.close()

    def _send(self, topic: str, partition: int | None, r) -> None:
        kw = {"value": r.value, "key": r.key, "timestamp": r.timestamp,
              "on_delivery": self._delivered}
        if r.headers:
            kw["headers"] = list(r.headers)
        if partition is not None:
            kw["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, **kw)
                return
            except BufferError:
                self._producer.poll(0.05)

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}/{msg.partition()}: {err}")

    def _commit(self, topic: str, partition: int, offset: int, same: bool, state: dict) -> None:
        left = self._producer.flush(60)
        if left or self._errors:
            why = self._errors[0] if self._errors else f"{left} records not acknowledged"
            raise FslogError(f"mirror to {self.bootstrap}: {why}; progress is kept up to the "
                             f"last acknowledged chunk: run again to go on")
        if same:  # first (see _mirror_partition), then the group's offset
            state[f"{topic}/{partition}"] = {"local": offset,
                                             "remote": self._remote_end(topic, partition)}
            self._write_state(state)
        self.reg.commit(topic, partition, offset, member_id=MEMBER)
