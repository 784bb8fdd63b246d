"""A leader that comes back after a crash having lost records a network follower had
already copied (appended on the leader, not yet fsynced there, so gone with the page
cache), and that writes new records at those offsets before the follower looks again.

The follower must not keep its copy of the lost records under the new ones (a diverged
tail): ``fslog serve`` begins a new leader epoch on every start, the follower checks every
partition against the leader's epochs (OffsetForLeaderEpoch) after it lost the
connection, before it appends anything more, truncates exactly the lost records, says how
many, and ends byte-identical to the leader."""

from __future__ import annotations

import os
import signal
import subprocess

from conftest import wait_for
from serve_fixtures import start_serve

import fslog
from fslog.records import batch as rb

TOPIC = "t"


def _log_bytes(root) -> bytes | None:
    d = os.path.join(root, "topics", TOPIC, f"{TOPIC}-0")
    if not os.path.isdir(d):
        return None
    out = b""
    for n in sorted(os.listdir(d)):
        if n.endswith(".log"):
            with open(os.path.join(d, n), "rb") as f:
                out += f.read()
    return out


def _epochs(root) -> list[tuple[int, int]]:
    from fslog.storage import leader_epoch
    return leader_epoch.entries(fslog.Log(str(root)).topic(TOPIC).partition(0))


def _produce(bootstrap: str, values: list[bytes]) -> None:
    """One batch per record (acks=1: the leader answers without waiting for followers)."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 0,
                  "enable.idempotence": False})
    for v in values:
        p.produce(TOPIC, v, partition=0)
        assert p.flush(60) == 0


def _lose_from(root, offset: int) -> int:
    """What a machine crash does to records not yet fsynced: the segment ends before the
    batch holding ``offset`` (as if those writes never reached the disk). Returns the
    records lost."""
    d = os.path.join(root, "topics", TOPIC, f"{TOPIC}-0")
    seg = os.path.join(d, sorted(n for n in os.listdir(d) if n.endswith(".log"))[-1])
    with open(seg, "rb") as f:
        data = f.read()
    pos = lost = 0
    cut = None
    while pos < len(data):
        h = rb.read_header(data, pos)
        if cut is None and h.last_offset >= offset:
            cut = pos
        if cut is not None:
            lost += h.record_count
        pos += h.size
    assert cut is not None
    os.truncate(seg, cut)
    return lost


def test_a_follower_drops_what_a_restarted_leader_lost_and_never_keeps_a_diverged_tail(
        cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cli("--root", a, "topic", "create", TOPIC)
    srv = start_serve(cli, env={"FSLOG_ROOT": str(a)})
    err_path = tmp_path / "replicate.err"
    with open(err_path, "wb") as err:
        f = cli.popen("--root", b, "replicate", "--from", srv.bootstrap,
                      stdout=subprocess.DEVNULL, stderr=err)
    try:
        _produce(srv.bootstrap, [b"old-%02d" % i for i in range(30)])
        wait_for(lambda: _log_bytes(b) == _log_bytes(a), timeout=60, interval=0.02,
                 what="the follower to copy offsets 0-29")
        # the follower is held still (its connection open) while the leader crashes,
        # loses offsets 20-29 with its page cache, restarts on the same address and
        # takes new records at those offsets and past the follower's log end
        f.send_signal(signal.SIGSTOP)
        try:
            srv.kill()
            lost = _lose_from(a, 20)
            assert lost == 10
            srv.start(port=srv.port)
            _produce(srv.bootstrap, [b"new-%02d" % i for i in range(25)])
        finally:
            f.send_signal(signal.SIGCONT)
        # (the follower notes a new epoch in its checkpoint just after appending the batch)
        try:
            wait_for(lambda: _log_bytes(b) == _log_bytes(a) and _epochs(b) == _epochs(a),
                     timeout=60, interval=0.02,
                     what="the follower to be byte-identical to the restarted leader")
        except AssertionError as e:
            raise AssertionError(f"{e}; the follower said:\n{err_path.read_text()}") from None
        text = err_path.read_text()
        assert "truncated 10 records (offsets 20 to 30)" in text, text
        r = fslog.Log(str(b)).reader(TOPIC)
        try:
            values = [x.value for x in r]
        finally:
            r.close()
        assert values == [b"old-%02d" % i for i in range(20)] + [b"new-%02d" % i for i in range(25)]
        # the restarted leader wrote in a new epoch, from where its log ended
        assert _epochs(a)[-1] == (2, 20)
        f.send_signal(signal.SIGTERM)
        assert f.wait(timeout=60) == 0, err_path.read_text()
        assert srv.stop() == 0
        cli("--root", a, "verify")
        cli("--root", b, "verify")
    finally:
        srv.kill()
        if f.poll() is None:
            f.kill()
            f.wait(timeout=30)
