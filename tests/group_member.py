"""A consumer-group member over the Kafka protocol, for tests of ``fslog serve`` as the
group coordinator: ``python group_member.py CLIENT BOOTSTRAP TOPIC GROUP [MAX_IDLE_S]``
with CLIENT one of kafka-python, confluent-kafka, aiokafka.

Prints one JSON line per event, flushed: ``{"assigned": [partitions]}`` whenever its
assignment changes, ``{"p": partition, "o": offset, "v": value}`` per record, each
committed (synchronously) right after it is printed. Exits 0 after MAX_IDLE_S seconds
without records (default: never), leaving the group; the tests kill it otherwise.
Session timeout 6 s (Kafka's minimum), heartbeats every 0.5 s.
"""

from __future__ import annotations

import json
import sys
import time


def emit(**kw) -> None:
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def run_kafka_python(bootstrap, topic, group, max_idle):
    import kafka
    c = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                            auto_offset_reset="earliest", enable_auto_commit=False,
                            session_timeout_ms=6000, heartbeat_interval_ms=500,
                            request_timeout_ms=30000)
    last, idle_since = None, time.monotonic()
    while max_idle is None or time.monotonic() - idle_since < max_idle:
        got = c.poll(timeout_ms=200)
        now = sorted(tp.partition for tp in c.assignment())
        if now != last:
            last = now
            emit(assigned=now)
        for tp, recs in got.items():
            for r in recs:
                emit(p=tp.partition, o=r.offset, v=r.value.decode())
            c.commit({tp: kafka.OffsetAndMetadata(recs[-1].offset + 1, None, -1)})
            idle_since = time.monotonic()
    c.close()


def run_confluent(bootstrap, topic, group, max_idle):
    import confluent_kafka
    c = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500, "broker.address.family": "v4"})
    state = {"parts": set()}

    def on_assign(consumer, parts):
        state["parts"] = {p.partition for p in parts}
        emit(assigned=sorted(state["parts"]))

    def on_revoke(consumer, parts):
        state["parts"] -= {p.partition for p in parts}
        emit(assigned=sorted(state["parts"]))
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    idle_since = time.monotonic()
    while max_idle is None or time.monotonic() - idle_since < max_idle:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        emit(p=m.partition(), o=m.offset(), v=m.value().decode())
        c.commit(message=m, asynchronous=False)
        idle_since = time.monotonic()
    c.close()


def run_aiokafka(bootstrap, topic, group, max_idle):
    import asyncio

    import aiokafka

    async def main():
        c = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                      auto_offset_reset="earliest", enable_auto_commit=False,
                                      session_timeout_ms=6000, heartbeat_interval_ms=500)
        await c.start()
        last, idle_since = None, time.monotonic()
        try:
            while max_idle is None or time.monotonic() - idle_since < max_idle:
                got = await c.getmany(timeout_ms=200)
                now = sorted(tp.partition for tp in c.assignment())
                if now != last:
                    last = now
                    emit(assigned=now)
                for tp, recs in got.items():
                    for r in recs:
                        emit(p=tp.partition, o=r.offset, v=r.value.decode())
                    await c.commit({tp: recs[-1].offset + 1})
                    idle_since = time.monotonic()
        finally:
            await c.stop()
    asyncio.run(main())


CLIENTS = {"kafka-python": run_kafka_python, "confluent-kafka": run_confluent,
           "aiokafka": run_aiokafka}

if __name__ == "__main__":
    client, bootstrap, topic, group = sys.argv[1:5]
    idle = float(sys.argv[5]) if len(sys.argv) > 5 else None
    CLIENTS[client](bootstrap, topic, group, idle)
