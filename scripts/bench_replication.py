"""Replication benchmark, file-root follower (``fslog replicate --from ROOT``), in one run:

1. the leader's ingest: ``fslog produce`` of N lines of ~100 bytes (a whole process,
   fsync before exit) — records/s;
2. the follower's catch-up: ``fslog replicate --from LEADER --once`` copying all of it
   (a whole process, fsync before exit) — records/s and the ratio to (1);
3. replication lag while following: a library producer appends R records/s (a batch
   every 10 ms, flushed) while ``fslog replicate`` follows; the lag of a batch is the
   time from its flush returning to the follower's log-end offset covering it (watched
   every 0.5 ms, so figures carry up to that much error) — p50, p99, max.

Usage: scripts/bench-replication [--records N] [--rate R] [--seconds S]"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import fslog


def fslog_cmd() -> list[str]:
    beside = os.path.join(os.path.dirname(sys.executable), "fslog")
    return [beside] if os.access(beside, os.X_OK) else [sys.executable, "-m", "fslog.cli.main"]


def timed(args: list[str], stdin=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(fslog_cmd() + args, stdin=stdin, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fslog-bench-replication-")
    try:
        a, b = os.path.join(work, "a"), os.path.join(work, "b")
        data = os.path.join(work, "in.jsonl")
        pad = "x" * 60
        with open(data, "w") as f:
            for i in range(args.records):
                f.write(f'{{"id":{i:09d},"user":"u-{i % 1000:04d}","pad":"{pad}"}}\n')
        with open(data, "rb") as f:
            t_prod = timed(["--root", a, "produce", "t", "--quiet"], stdin=f)
        t_copy = timed(["--root", b, "replicate", "--from", a, "--once", "--quiet"])
        n = args.records
        print(f"leader ingest  fslog produce            {n / t_prod:12,.0f} records/s  ({t_prod:.2f} s)")
        print(f"follower copy  fslog replicate --once   {n / t_copy:12,.0f} records/s  "
              f"({t_copy:.2f} s)  {t_prod / t_copy:.2f}x the leader's ingest")

        # lag while following
        la = fslog.Log(a)
        la.create_topic("live")
        f = subprocess.Popen(fslog_cmd() + ["--root", b, "replicate", "--from", a, "--quiet"])
        try:
            lb = fslog.Log(b)
            deadline = time.monotonic() + 60
            while not lb.exists("live") and time.monotonic() < deadline:
                time.sleep(0.01)
            pb = lb.topic("live").partition(0)
            pending: list[tuple[int, float]] = []
            lags: list[float] = []
            done = threading.Event()
            lock = threading.Lock()

            def watch():
                while not (done.is_set() and not pending):
                    try:
                        end = pb.end_offset()
                    except (fslog.FslogError, OSError):
                        end = 0
                    now = time.perf_counter()
                    with lock:
                        while pending and pending[0][0] <= end:
                            lags.append(now - pending.pop(0)[1])
                    time.sleep(0.0005)

            w = threading.Thread(target=watch, daemon=True)
            w.start()
            per_batch = max(1, args.rate // 100)
            value = b'{"id":000000000,"user":"u-0000","pad":"' + pad.encode() + b'"}'
            with la.producer("live") as p:
                t_end = time.perf_counter() + args.seconds
                nxt = time.perf_counter()
                sent = 0
                while time.perf_counter() < t_end:
                    for _ in range(per_batch):
                        p.send(value)
                    p.flush()
                    sent += per_batch
                    with lock:
                        pending.append((sent, time.perf_counter()))
                    nxt += 0.01
                    time.sleep(max(0.0, nxt - time.perf_counter()))
            done.set()
            w.join(timeout=60)
            ms = [x * 1000 for x in lags]
            print(f"lag at {args.rate:,} records/s over {args.seconds:.0f} s ({len(ms)} batches): "
                  f"p50 {pct(ms, 0.5):.1f} ms, p99 {pct(ms, 0.99):.1f} ms, max {max(ms):.1f} ms")
        finally:
            f.terminate()
            f.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
