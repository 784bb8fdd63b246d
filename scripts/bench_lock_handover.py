"""Lock hand-over latency: how long a process blocked on a partition's lock waits after
the holder lets go. fslog's lock (``storage/locks.BlockingLock``: flock(LOCK_EX), a
blocking wait in the kernel) against a polling lock (flock(LOCK_NB) retried every
``--poll-ms``, the default of the filelock package: 50 ms) and, if it is installed,
filelock.FileLock itself. Usage: scripts/bench-lock-handover [--rounds N] [--poll-ms MS]

Each round: the parent holds the lock, the child blocks acquiring it, the parent notes
the time and releases; the child notes the time it got the lock. Both clocks are
CLOCK_MONOTONIC (one clock for the whole machine), so the difference is the hand-over.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import multiprocessing as mp
import os
import random
import statistics
import tempfile
import time

from fslog.storage.locks import BlockingLock


class PollingLock:
    """flock(LOCK_NB) retried every ``interval`` seconds: how a polling lock waits."""

    def __init__(self, path: str, interval: float):
        self.path = path
        self.interval = interval
        self.fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                return
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            time.sleep(self.interval)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1


class FileLockAdapter:
    def __init__(self, path: str, interval: float):
        import filelock
        self._lock = filelock.FileLock(path)
        self.interval = interval

    def acquire(self) -> None:
        self._lock.acquire(poll_interval=self.interval)

    def release(self) -> None:
        self._lock.release()


def make_lock(kind: str, path: str, poll: float):
    if kind == "fslog":
        return BlockingLock(path)
    if kind == "polling":
        return PollingLock(path, poll)
    return FileLockAdapter(path, poll)


def _child(kind: str, path: str, poll: float, go, ready, times) -> None:
    lock = make_lock(kind, path, poll)
    while True:
        if go.recv() is None:
            return
        ready.send(True)      # about to block on the lock
        lock.acquire()
        times.send(time.monotonic_ns())
        lock.release()


def measure(kind: str, rounds: int, poll: float, directory: str) -> list[float]:
    path = os.path.join(directory, f"{kind}.lock")
    holder = make_lock(kind, path, poll)
    go_r, go_w = mp.Pipe(duplex=False)
    ready_r, ready_w = mp.Pipe(duplex=False)
    times_r, times_w = mp.Pipe(duplex=False)
    child = mp.Process(target=_child, args=(kind, path, poll, go_r, ready_w, times_w))
    child.start()
    out = []
    try:
        for _ in range(rounds):
            holder.acquire()
            go_w.send(True)
            ready_r.recv()
            # the child is blocked (or polling) by now; a random hold so that the release
            # falls anywhere within a poll interval
            time.sleep(0.02 + random.uniform(0, poll))
            released = time.monotonic_ns()
            holder.release()
            got = times_r.recv()
            out.append((got - released) / 1e6)
    finally:
        go_w.send(None)
        child.join(10)
        if child.is_alive():
            child.kill()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--poll-ms", type=float, default=50.0,
                    help="poll interval of the polling locks (filelock's default: 50)")
    args = ap.parse_args()
    poll = args.poll_ms / 1000
    kinds = ["fslog", "polling"]
    try:
        import filelock  # noqa: F401
        kinds.append("filelock")
    except ImportError:
        print("filelock is not installed: skipping it (pip install filelock to compare)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="fslog-bench-lock-") as d:
        for kind in kinds:
            ms = measure(kind, args.rounds, poll, d)
            results[kind] = ms
            q = statistics.quantiles(ms, n=20, method="inclusive")
            print(f"{kind:9s} hand-over over {args.rounds} rounds: median {statistics.median(ms):7.3f} ms"
                  f"  mean {statistics.fmean(ms):7.3f} ms  p95 {q[18]:7.3f} ms  max {max(ms):7.3f} ms")
    ref = statistics.median(results["fslog"])
    for kind in kinds[1:]:
        print(f"{kind}: median hand-over {statistics.median(results[kind]) / ref:,.0f}x fslog's "
              f"(poll interval {args.poll_ms:g} ms)")


if __name__ == "__main__":
    main()
