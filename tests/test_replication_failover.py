"""Failover under acks=all, kill -9 of the leader, many trials in one chain of two roots.

Leader X (``fslog serve``, ``min.insync.replicas=2``) and follower Y (``fslog replicate
--from HOST:PORT``); a confluent-kafka (librdkafka) producer sends with acks=all while X
is killed -9 at a random moment. Then, each trial:

- every record the producer saw acknowledged is on Y, at its offset;
- Y is promoted (``fslog serve`` on its root) and X is restarted as Y's follower
  (``fslog replicate --from`` Y): X truncates the tail it wrote that never reached Y —
  exactly the records between Y's log-end offset and X's, and says so — and ends
  byte-identical to Y (same segment files, ``cmp``);
- producers continue on Y (acks=all: answered only once X is in sync again), and a
  consumer group continues from the offset it committed on X (copied to Y by the
  follower), seeing every record from there on.

The roles then swap for the next trial: the two roots and their processes are reused, so a
trial costs one server and one follower start. ``FSLOG_REPLICATION_TRIALS`` sets the
count (default 20), run as ``SHARDS`` chains of their own (their own two roots, seeds
``FSLOG_REPLICATION_SEED`` + shard) that pytest-xdist can spread over its workers. Only
safety is asserted; waits are bounded guards against hangs.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
from conftest import wait_for
from serve_fixtures import start_serve

import fslog

TOPIC = "t"
SHARDS = 4  # chains of trials, each a test item of its own


def _segments(root) -> dict[str, bytes]:
    d = os.path.join(root, "topics", TOPIC, f"{TOPIC}-0")
    out = {}
    for n in sorted(os.listdir(d)):
        if n.endswith(".log"):
            with open(os.path.join(d, n), "rb") as f:
                out[n] = f.read()
    return out


def _identical(a, b) -> bool:
    try:
        return _segments(a) == _segments(b)
    except FileNotFoundError:  # a segment rolled or deleted while listed
        return False


def _records(root) -> dict[int, bytes]:
    r = fslog.Log(str(root)).reader(TOPIC)
    try:
        return {x.offset: x.value for x in r}
    finally:
        r.close()


def _end(root) -> int:
    return fslog.Log(str(root)).topic(TOPIC).partition(0).end_offset()


def _committed(root, group: str) -> int | None:
    from fslog.groups.registry import Registry
    try:
        return Registry(str(root), group, create=False).committed(TOPIC, 0)
    except fslog.FslogError:
        return None


class _Follower:
    """``fslog replicate --from BOOTSTRAP`` into ``root``, stderr kept in a file."""

    def __init__(self, cli, root, bootstrap: str, n: int):
        self.err_path = os.path.join(os.path.dirname(root), f"replicate-{n}.err")
        self.err = open(self.err_path, "wb")
        self.proc = cli.popen("--root", root, "replicate", "--from", bootstrap,
                              stdout=subprocess.DEVNULL, stderr=self.err)

    def stderr_text(self) -> str:
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.err.close()
        assert code == 0, self.stderr_text()


def _quiet_logger():
    """librdkafka's log lines (a refused connection to the killed leader) kept off stderr."""
    import logging
    quiet = logging.getLogger("test.librdkafka")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    return quiet


def _produce(bootstrap: str, values: list[bytes]) -> dict[int, bytes]:
    """Send with acks=all and wait: {offset: value} of each acknowledged record."""
    from confluent_kafka import Producer
    acked: dict[int, bytes] = {}

    def done(err, msg):
        assert err is None, f"acks=all produce failed: {err}"
        acked[msg.offset()] = msg.value()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1,
                  "enable.idempotence": False, "message.timeout.ms": 60000,
                  "retry.backoff.ms": 10, "retry.backoff.max.ms": 50,
                  "logger": _quiet_logger()})
    for v in values:
        p.produce(TOPIC, v, partition=0, on_delivery=done)
    assert p.flush(90) == 0
    return acked


def _produce_until_killed(bootstrap: str, prefix: bytes, kill_delay: float, kill) -> dict[int, bytes]:
    """Sustained acks=all production (up to 20 records in flight, sent as they come);
    ``kill()`` runs ``kill_delay`` seconds after the first acknowledgement, with requests
    in flight. Returns what was acknowledged (a delivery report without error): nothing
    sent after the kill can be."""
    from confluent_kafka import Producer
    acked: dict[int, bytes] = {}
    pending = [0]

    def done(err, msg):
        pending[0] -= 1
        if err is None:
            acked[msg.offset()] = msg.value()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                  "enable.idempotence": False, "message.timeout.ms": 60000,
                  "logger": _quiet_logger()})
    i = 0
    deadline = time.monotonic() + 120
    first = None
    while first is None or time.monotonic() < first + kill_delay:
        assert time.monotonic() < deadline, "no acknowledgements: is the follower in sync?"
        while pending[0] < 20:
            p.produce(TOPIC, b"%s-%06d" % (prefix, i), partition=0, on_delivery=done)
            pending[0] += 1
            i += 1
        p.poll(0.0005)
        if first is None and acked:
            first = time.monotonic()
    kill()
    p.purge(in_queue=True, in_flight=True, blocking=False)
    p.poll(0)
    p.flush(0)
    return acked


def _consume_group(bootstrap: str, group: str, upto: int) -> list[tuple[int, bytes]]:
    """A consumer of ``group`` (assigned partition 0, no offset given: it starts at the
    group's committed offset) reads to ``upto`` and commits."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 50, "logger": _quiet_logger()})
    try:
        c.assign([TopicPartition(TOPIC, 0)])
        got: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 60
        while not got or got[-1][0] + 1 < upto:
            assert time.monotonic() < deadline, f"consumed {len(got)} records, not up to {upto}"
            m = c.poll(0.2)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append((m.offset(), m.value()))
        c.commit(offsets=[TopicPartition(TOPIC, 0, got[-1][0] + 1)], asynchronous=False)
        return got
    finally:
        c.close()


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS))
def test_leader_killed_9_during_acks_all_loses_nothing_and_the_old_leader_converges(
        cli, tmp_path, shard):
    total = int(os.environ.get("FSLOG_REPLICATION_TRIALS", "20"))
    trials = (shard + 1) * total // SHARDS - shard * total // SHARDS  # 20 in all
    if trials == 0:
        pytest.skip(f"FSLOG_REPLICATION_TRIALS={total}: no trial for chain {shard}")
    rng = random.Random(int(os.environ.get("FSLOG_REPLICATION_SEED", "1313")) + shard)
    x, y = tmp_path / "a", tmp_path / "b"
    cli("--root", x, "topic", "create", TOPIC, "--config", "min.insync.replicas=2",
        "--config", "segment.bytes=4096")
    srv = start_serve(cli, env={"FSLOG_ROOT": str(x)})
    f = _Follower(cli, y, srv.bootstrap, 0)
    acked: dict[int, bytes] = {}      # every acknowledged record so far, by offset
    committed = None                  # the group's last commit (on the follower before the kill)
    truncated = 0                     # the records X must drop after its trial's kill
    try:
        for trial in range(trials):
            # the group continues from its committed offset, as copied to the new leader
            if acked:
                got = _consume_group(srv.bootstrap, "g", max(acked) + 1)
                if committed is not None:
                    assert got[0][0] == committed, f"trial {trial}: the group started at " \
                        f"{got[0][0]}, its committed offset was {committed}"
                held = _records(x)
                assert all(held[o] == v for o, v in got), f"trial {trial}: consumed != the log"
                committed = got[-1][0] + 1
            # producers continue on the leader (acks=all: once the follower is in sync)
            acked.update(_produce(srv.bootstrap, [b"p%d-%d" % (trial, i) for i in range(20)]))
            # the follower (the old leader after the first trial) ends byte-identical, with
            # the group's commit
            wait_for(lambda: _identical(x, y) and (committed is None or
                                                  _committed(y, "g") == committed),
                     timeout=60, interval=0.02,
                     what=f"trial {trial}: the follower to be byte-identical")
            if truncated > 0:
                assert f"truncated {truncated} records" in f.stderr_text(), f.stderr_text()
            # sustained acks=all production; the leader killed -9 at a random moment
            acked_now = _produce_until_killed(srv.bootstrap, b"k%d" % trial,
                                              rng.uniform(0, 0.3), srv.kill)
            assert acked_now
            acked.update(acked_now)
            f.stop()                  # it was retrying the dead leader
            held = _records(y)
            missing = sorted(o for o, v in acked.items() if held.get(o) != v)
            assert not missing, f"trial {trial}: acknowledged, not on the follower: {missing[:5]}"
            truncated = _end(x) - _end(y)
            if os.environ.get("FSLOG_REPLICATION_VERBOSE"):
                print(f"trial {trial}: {len(acked_now)} acknowledged before the kill, "
                      f"{truncated} to truncate")
            assert truncated >= 0
            # Y is promoted (serve on a follower root); X restarts as Y's follower
            srv = start_serve(cli, env={"FSLOG_ROOT": str(y)})
            assert "promoted to leader" in srv.stderr_text()
            x, y = y, x
            f = _Follower(cli, y, srv.bootstrap, trial + 1)
        # the last leader goes on too: the group, production, a converged follower
        got = _consume_group(srv.bootstrap, "g", max(acked) + 1)
        assert got[0][0] == committed
        acked.update(_produce(srv.bootstrap, [b"end-%d" % i for i in range(20)]))
        wait_for(lambda: _identical(x, y), timeout=60, interval=0.02, what="the last follower")
        if truncated > 0:
            assert f"truncated {truncated} records" in f.stderr_text(), f.stderr_text()
        held = _records(y)
        assert all(held.get(o) == v for o, v in acked.items())
        f.stop()
        assert srv.stop() == 0
        cli("--root", x, "verify")
        cli("--root", y, "verify")
    finally:
        srv.kill()
        f.proc.kill()
