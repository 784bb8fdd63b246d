"""Waiting for appends (``follow.py``): inotify through watchdog, and the polling fallback
where watchdog cannot start — in the library and through ``fslog consume --follow``."""

from __future__ import annotations

import signal
import sys
import threading
import time

from conftest import wait_for

import fslog
from fslog.storage.follow import AppendWaiter


def _log(tmp_path):
    log = fslog.Log(str(tmp_path / "root"))
    log.create_topic("t")
    return log


def _append_soon(log, delay=0.2):
    def go():
        time.sleep(delay)
        with log.producer("t", background=False) as p:
            p.send(b"x")
    th = threading.Thread(target=go)
    th.start()
    return th


def test_inotify_wakes_the_waiter(tmp_path):
    log = _log(tmp_path)
    path = log.topic("t").partition(0).path
    w = AppendWaiter([path])
    try:
        assert not w.polling
        th = _append_soon(log)
        t0 = time.monotonic()
        woke = False
        while not woke and time.monotonic() - t0 < 120:  # only a guard against a hang
            woke = w.wait(5)
        th.join()
        assert woke
    finally:
        w.close()


def test_polling_fallback_when_watchdog_cannot_start(tmp_path, monkeypatch):
    log = _log(tmp_path)
    monkeypatch.setitem(sys.modules, "watchdog.observers", None)  # import fails
    w = AppendWaiter([log.topic("t").partition(0).path], poll_interval=0.05)
    try:
        assert w.polling
        t0 = time.monotonic()
        assert w.wait(30) is False  # no events to wake it: it returns after one poll interval,
        assert time.monotonic() - t0 < 25  # not after the whole wait (a guard, not a timing)
    finally:
        w.close()


def test_consume_follow_without_watchdog_polls(cli, tmp_path):
    """A machine where watchdog cannot be used (here: an import that fails) still
    follows, by polling."""
    fake = tmp_path / "fake"
    (fake / "watchdog").mkdir(parents=True)
    (fake / "watchdog" / "__init__.py").write_text("raise ImportError('no inotify here')\n")
    env = {"PYTHONPATH": str(fake)}
    cli.produce("t", b"one\n")
    f = cli.popen("consume", "t", "--follow", env=env)
    got = []

    def reader():
        for line in f.stdout:
            got.append(line)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    wait_for(lambda: got == [b"one\n"], 60, what="the first record")
    cli.produce("t", b"two\n")
    wait_for(lambda: got == [b"one\n", b"two\n"], 60, what="the record produced later")
    f.send_signal(signal.SIGTERM)
    assert f.wait(timeout=60) == 0
    assert b"Traceback" not in f.stderr.read()
