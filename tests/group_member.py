"""A consumer-group member over the Kafka protocol, for tests of ``fslog serve`` as the
group coordinator: ``python group_member.py CLIENT BOOTSTRAP TOPIC GROUP [--idle S]
[--records N]`` with CLIENT one of kafka-python, confluent-kafka, aiokafka.

Prints one JSON line per event, flushed: ``{"assigned": [partitions]}`` whenever its
assignment changes, ``{"p": partition, "o": offset, "v": value}`` per record, each
committed (synchronously) right after it is printed. Exits 0, leaving the group, once it
committed N records (``--records``: no waiting for silence) or after S seconds without
records (``--idle``); with neither it runs until the tests kill it. Session timeout 6 s
(Kafka's minimum), heartbeats every 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def emit(**kw) -> None:
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


class Run:
    """What every client's poll loop shares: when to stop, and the assignment lines."""

    def __init__(self, max_idle: float | None, records: int | None):
        self.max_idle = max_idle
        self.left = records
        self.idle_since = time.monotonic()
        self.last: list[int] | None = None

    def going(self) -> bool:
        if self.left is not None and self.left <= 0:
            return False
        return self.max_idle is None or time.monotonic() - self.idle_since < self.max_idle

    def assignment(self, partitions) -> None:
        """Print the assignment when it changed since the last one printed."""
        now = sorted(partitions)
        if now != self.last:
            self.last = now
            emit(assigned=now)

    def committed(self, n: int) -> None:
        """``n`` records printed and committed."""
        self.idle_since = time.monotonic()
        if self.left is not None:
            self.left -= n


def run_kafka_python(bootstrap, topic, group, run: Run):
    import kafka
    c = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                            auto_offset_reset="earliest", enable_auto_commit=False,
                            session_timeout_ms=6000, heartbeat_interval_ms=500,
                            request_timeout_ms=30000)
    while run.going():
        got = c.poll(timeout_ms=200)
        run.assignment(tp.partition for tp in c.assignment())
        for tp, recs in got.items():
            for r in recs:
                emit(p=tp.partition, o=r.offset, v=r.value.decode())
            c.commit({tp: kafka.OffsetAndMetadata(recs[-1].offset + 1, None, -1)})
            run.committed(len(recs))
    c.close()


def run_confluent(bootstrap, topic, group, run: Run):
    import confluent_kafka
    c = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500, "broker.address.family": "v4"})
    parts: set[int] = set()

    def on_assign(consumer, assigned):
        parts.clear()
        parts.update(p.partition for p in assigned)
        run.assignment(parts)

    def on_revoke(consumer, revoked):
        parts.difference_update(p.partition for p in revoked)
        run.assignment(parts)
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while run.going():
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        emit(p=m.partition(), o=m.offset(), v=m.value().decode())
        c.commit(message=m, asynchronous=False)
        run.committed(1)
    c.close()


def run_aiokafka(bootstrap, topic, group, run: Run):
    import asyncio

    import aiokafka

    async def main():
        c = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                      auto_offset_reset="earliest", enable_auto_commit=False,
                                      session_timeout_ms=6000, heartbeat_interval_ms=500)
        await c.start()
        try:
            while run.going():
                got = await c.getmany(timeout_ms=200)
                run.assignment(tp.partition for tp in c.assignment())
                for tp, recs in got.items():
                    for r in recs:
                        emit(p=tp.partition, o=r.offset, v=r.value.decode())
                    await c.commit({tp: recs[-1].offset + 1})
                    run.committed(len(recs))
        finally:
            await c.stop()
    asyncio.run(main())


CLIENTS = {"kafka-python": run_kafka_python, "confluent-kafka": run_confluent,
           "aiokafka": run_aiokafka}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("client", choices=sorted(CLIENTS))
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("group")
    ap.add_argument("--idle", type=float, help="exit after this many seconds without records")
    ap.add_argument("--records", type=int, help="exit once this many records are committed")
    a = ap.parse_args()
    CLIENTS[a.client](a.bootstrap, a.topic, a.group, Run(a.idle, a.records))
