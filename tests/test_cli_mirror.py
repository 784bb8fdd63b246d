"""``fslog mirror --to``: local topics pushed to a Kafka-protocol endpoint (an fslog serve
on another root): every record once, keys, values, headers and timestamps kept, a rerun
goes on, a kill -9 and a rerun send nothing twice."""

from __future__ import annotations

import json
import signal

from conftest import wait_for
from serve_fixtures import start_serve

import fslog



def total(root, topic: str) -> int:
    return sum(p.end_offset() for p in fslog.Log(str(root)).topic(topic).partitions())


def records(root, topic: str) -> list[tuple]:
    r = fslog.Log(str(root)).reader(topic)
    try:
        return sorted((x.partition, x.offset, x.timestamp, x.key, x.value, tuple(x.headers))
                      for x in r)
    finally:
        r.close()


def test_mirror_sends_every_record_once_and_resumes_after_kill9(cli, tmp_path):
    remote = tmp_path / "remote"
    cli("--root", remote, "topic", "create", "t", "--partitions", "2")
    srv = start_serve(cli, env={"FSLOG_ROOT": str(remote)})
    try:
        log = cli.log()
        log.create_topic("t", partitions=2)
        with log.producer("t") as p:
            for i in range(3000):
                p.send(b"v-%d" % i, key=b"k-%d" % (i % 37), headers=[("n", b"%d" % i)])
        cp = cli("mirror", "t", "--to", srv.bootstrap, "--json")
        assert json.loads(cp.stdout)["records_sent"] == 3000
        wait_for(lambda: records(remote, "t") == records(cli.root, "t"), timeout=30,
                 what="the remote topic to hold every record")
        again = json.loads(cli("mirror", "t", "--to", srv.bootstrap, "--json").stdout)
        assert again["records_sent"] == 0
        described = json.loads(cli("group", "describe", "fslog-mirror", "--json").stdout)
        assert all(x["lag"] == 0 for x in described["partitions"])
        # many more records; the mirror killed -9 while it sends them; a rerun finishes
        cli("produce", "t", input=b"".join(b"w-%06d\n" % i for i in range(150000)))
        m = cli.popen("mirror", "t", "--to", srv.bootstrap)
        wait_for(lambda: total(remote, "t") > 3000 + 30000, timeout=120,
                 interval=0.01, what="the mirror to be under way")
        m.send_signal(signal.SIGKILL)
        m.wait(timeout=10)
        cp = cli("mirror", "t", "--to", srv.bootstrap, "--json")
        assert json.loads(cp.stdout)["records_sent"] < 150000  # went on, not from scratch
        assert total(remote, "t") == total(cli.root, "t") == 153000
        assert records(remote, "t") == records(cli.root, "t")  # same offsets: nothing twice
    finally:
        srv.stop()
