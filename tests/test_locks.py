"""Lock files that carry a published document (a running server, a served group):
what other processes read, and that a dead holder's document is never read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from fslog.storage.locks import ProcessLock, read_published

HOLDER = r"""
import sys, time
from fslog.storage.locks import ProcessLock
lock = ProcessLock(sys.argv[1])
assert lock.try_acquire()
lock.publish_json({"members": [{"id": "m-%05d" % i, "topics": ["orders"]} for i in range(400)]})
print("ready", flush=True)
time.sleep(120)
"""


def _wait_for(pred, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_a_large_document_is_read_whole_and_a_killed_holders_is_not(tmp_path):
    path = str(tmp_path / "served.lock")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        doc = read_published(path)
        assert doc is not None and len(doc["members"]) == 400  # far more than 4 KiB
        assert os.path.getsize(path) > 4096
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert _wait_for(lambda: read_published(path) is None)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_a_shorter_rewrite_leaves_no_tail_and_release_clears(tmp_path):
    path = str(tmp_path / "server.lock")
    lock = ProcessLock(path)
    assert lock.try_acquire()
    assert read_published(path) == {}  # held, nothing published yet
    lock.publish_json({"listen": "127.0.0.1:9092", "note": "x" * 5000})
    lock.publish_json({"listen": "127.0.0.1:9093"})
    assert read_published(path) == {"listen": "127.0.0.1:9093"}
    lock.release_clearing()
    assert read_published(path) is None
    assert os.path.getsize(path) == 0
