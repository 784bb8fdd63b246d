"""Waking long-poll Fetches (``fslog/broker/wakeup.py``): no wakeup lost between a
Fetch's read and its wait, inotify read on the event loop, and only segment writes wake
(the lock file every append opens and closes does not)."""

from __future__ import annotations

import asyncio
import os

from fslog.broker.wakeup import Wakeups


def run(coro):
    return asyncio.run(coro)


def test_a_notify_between_snapshot_and_wait_is_not_lost(tmp_path):
    async def main():
        w = Wakeups(asyncio.get_running_loop())
        path = str(tmp_path)
        try:
            seen = w.snapshot([path])
            w.notify(path)  # an append after the Fetch read, before it waits
            # returns at once although nothing will notify again (a 60 s wait otherwise)
            assert await asyncio.wait_for(w.wait([path], 60, seen), 10) is True
            seen = w.snapshot([path])
            assert await w.wait([path], 0.05, seen) is False  # nothing new: times out
        finally:
            w.close()
    run(main())


def test_a_waiting_fetch_is_woken_by_notify(tmp_path):
    async def main():
        w = Wakeups(asyncio.get_running_loop())
        path = str(tmp_path)
        try:
            seen = w.snapshot([path])
            asyncio.get_running_loop().call_later(0.05, w.notify, path)
            assert await asyncio.wait_for(w.wait([path], 60, seen), 10) is True
        finally:
            w.close()
    run(main())


def test_segment_writes_by_other_processes_wake_lock_files_do_not(tmp_path):
    async def main():
        loop = asyncio.get_running_loop()
        w = Wakeups(loop)
        path = str(tmp_path)
        try:
            seen = w.snapshot([path])
            # what every append does besides writing: open and close the lock file
            for _ in range(3):
                fd = os.open(os.path.join(path, ".lock"), os.O_RDWR | os.O_CREAT)
                os.close(fd)
            assert await w.wait([path], 0.3, seen) is False
            seen = w.snapshot([path])

            def append():
                with open(os.path.join(path, "00000000000000000000.log"), "ab") as f:
                    f.write(b"x")
            loop.call_later(0.05, append)
            assert await asyncio.wait_for(w.wait([path], 60, seen), 30) is True
        finally:
            w.close()
    run(main())
