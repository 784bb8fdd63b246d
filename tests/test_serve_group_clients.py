"""Groups of real Kafka clients through ``fslog serve``: kafka-python, confluent-kafka
(librdkafka), aiokafka and kcat consume from committed offsets shared with ``fslog
consume --group``; two members split four partitions, one is killed with kill -9 and
the other takes its partitions over once its session timeout (6 s) has passed.

Members run as separate processes (``group_member.py``); every wait is bounded and
only guards against hangs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
from serve_fixtures import in_ci, start_serve

CLIENTS = ["kafka-python", "confluent-kafka", "aiokafka"]
MEMBER = os.path.join(os.path.dirname(__file__), "group_member.py")


def _fetch_served() -> bool:
    from fslog.broker.handlers import HANDLERS, load_handlers
    load_handlers()
    from fslog.broker import fetch
    return 1 in HANDLERS and fetch.__doc__ is not None


pytestmark = pytest.mark.skipif(not _fetch_served(), reason="fslog serve has no Fetch yet")


@pytest.fixture
def serve(cli):
    """``fslog serve`` over the test's root, with Kafka's default first-join wait (3 s):
    with none (``--group-initial-rebalance-delay-ms 0``) a lone kafka-python member was
    once assigned no partition and stayed so for 90 s at load 3 (its events: one
    assignment, empty; the cause is not found yet), so these tests keep the default."""
    s = start_serve(cli)
    yield s
    s.kill()


def need(client: str) -> None:
    pytest.importorskip(client.replace("-", "_").replace("kafka_python", "kafka"))


class Member:
    """A member process and the JSON lines it printed so far."""

    def __init__(self, client: str, bootstrap: str, topic: str, group: str,
                 records: int | None = None):
        args = [sys.executable, MEMBER, client, bootstrap, topic, group]
        if records is not None:  # it leaves the group once it committed that many
            args += ["--records", str(records)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.events: list[dict] = []
        self.err = bytearray()
        self._threads = [threading.Thread(target=self._pump, daemon=True),
                         threading.Thread(target=self._pump_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _pump(self) -> None:
        for line in iter(self.proc.stdout.readline, b""):
            self.events.append(json.loads(line))

    def _pump_err(self) -> None:
        for line in iter(self.proc.stderr.readline, b""):
            self.err += line

    def assigned(self) -> list[int] | None:
        for e in reversed(self.events):
            if "assigned" in e:
                return e["assigned"]
        return None

    def values(self) -> list[str]:
        return [e["v"] for e in self.events if "v" in e]

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def wait_for(predicate, what: str, timeout: float = 90, members=()):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            detail = "\n".join(f"events {m.events[-5:]}, stderr {bytes(m.err[-2000:])!r}"
                               for m in members)
            raise AssertionError(f"{what}: not within {timeout} s\n{detail}")
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENTS)
def test_group_continues_from_cli_commits_and_back(cli, serve, client):
    need(client)
    cli.create("t")
    cli.produce("t", b"".join(b"r%d\n" % i for i in range(10)))
    assert cli.run("consume", "t", "--group", "g", "-m", "4").stdout == b"r0\nr1\nr2\nr3\n"
    m = Member(client, serve.bootstrap, "t", "g", records=6)
    try:
        assert m.wait() == 0, bytes(m.err).decode(errors="replace")
    finally:
        m.kill()
    assert m.values() == [f"r{i}" for i in range(4, 10)]
    d = json.loads(cli.run("group", "describe", "g", "--json").stdout)
    assert [(p["partition"], p["committed"], p["lag"]) for p in d["partitions"]] == [(0, 10, 0)]
    cli.produce("t", b"r10\nr11\n")
    assert cli.run("consume", "t", "--group", "g").stdout == b"r10\nr11\n"


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENTS)
def test_two_members_split_four_partitions_and_one_takes_over_after_kill_9(
        cli, serve, client):
    need(client)
    cli.create("t4", "--partitions", "4")
    for p in range(4):
        cli.produce("t4", b"a%d\n" % p, "-p", str(p))
    a = Member(client, serve.bootstrap, "t4", "pair")
    b = None
    try:
        wait_for(lambda: a.assigned() == [0, 1, 2, 3] and len(a.values()) == 4,
                 "the first member reads all four partitions", members=[a])
        b = Member(client, serve.bootstrap, "t4", "pair")
        wait_for(lambda: b.assigned() and a.assigned() and len(b.assigned()) == 2
                 and sorted(a.assigned() + b.assigned()) == [0, 1, 2, 3],
                 "the two members split the partitions", members=[a, b])
        d = json.loads(cli.run("group", "describe", "pair", "--json").stdout)
        assert len(d["members"]) == 2
        owners = {p["partition"]: p["member"]["member_id"] for p in d["partitions"]}
        assert len(set(owners.values())) == 2
        taken = list(b.assigned())
        b.proc.kill()  # kill -9: no LeaveGroup; the server notices at the session timeout
        b.wait(timeout=30)
        for p in range(4):
            cli.produce("t4", b"b%d\n" % p, "-p", str(p))
        wait_for(lambda: a.assigned() == [0, 1, 2, 3]
                 and {f"b{p}" for p in range(4)} <= set(a.values()),
                 "the survivor takes over the killed member's partitions", members=[a])
        assert {f"b{p}" for p in taken} <= set(a.values())
        assert "sent nothing within its session timeout of 6000 ms" in serve.stderr_text()
    finally:
        a.kill()
        if b is not None:
            b.kill()


def test_kcat_balanced_consumer_continues_from_cli_commits(cli, serve):
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        if in_ci():
            pytest.fail("kcat is not installed (.ci/run installs it)")
        pytest.skip("kcat is not installed")
    cli.create("t")
    cli.produce("t", b"".join(b"k%d\n" % i for i in range(6)))
    cli.run("consume", "t", "--group", "kg", "-m", "2")
    out = subprocess.run([kcat, "-b", serve.bootstrap, "-G", "kg", "-e", "-q", "-f", "%s\n",
                          "-X", "session.timeout.ms=6000", "-X", "auto.offset.reset=earliest",
                          "-X", "broker.address.family=v4", "t"],
                         check=False, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"k2\nk3\nk4\nk5\n"
    d = json.loads(cli.run("group", "describe", "kg", "--json").stdout)
    assert d["partitions"][0]["committed"] == 6


def test_kafkajs_group_continues_from_cli_commits_and_back(cli, serve):
    node = shutil.which("node")
    js = os.path.join(os.path.dirname(__file__), "js")
    if node is None or not os.path.isdir(os.path.join(js, "node_modules", "kafkajs")):
        if in_ci():
            pytest.fail("kafkajs is not installed (.ci/run installs it)")
        pytest.skip("kafkajs is not installed (node and tests/js/node_modules/kafkajs)")
    cli.create("t")
    cli.produce("t", b"".join(b"j%d\n" % i for i in range(8)))
    cli.run("consume", "t", "--group", "jg", "-m", "3")
    cmd = {"op": "group", "bootstrap": serve.bootstrap, "topic": "t", "group": "jg",
           "records": 5, "idle_ms": 3000}  # it leaves once it committed 5
    cp = subprocess.run([node, os.path.join(js, "kafkajs_client.js"), json.dumps(cmd)],
                        check=False, capture_output=True, timeout=120)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    assert [r["value"] for r in json.loads(cp.stdout)] == [f"j{i}" for i in range(3, 8)]
    d = json.loads(cli.run("group", "describe", "jg", "--json").stdout)
    assert d["partitions"][0]["committed"] == 8
    cli.produce("t", b"j8\n")
    assert cli.run("consume", "t", "--group", "jg").stdout == b"j8\n"
