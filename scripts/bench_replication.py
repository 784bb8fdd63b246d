"""Replication benchmark, in one run. File-root follower (``fslog replicate --from ROOT``):

1. the leader's ingest: ``fslog produce`` of N lines of ~100 bytes (a whole process,
   fsync before exit) — records/s;
2. the follower's catch-up: ``fslog replicate --from LEADER --once`` copying all of it
   (a whole process, fsync before exit) — records/s and the ratio to (1);
3. replication lag while following: a library producer appends R records/s (a batch
   every 10 ms, flushed) while ``fslog replicate`` follows; the lag of a batch is the
   time from its flush returning to the follower's log-end offset covering it (watched
   every 0.5 ms, so figures carry up to that much error) — p50, p99, max.

Network follower (``fslog replicate --from HOST:PORT``, the leader an ``fslog serve`` on
the leader's root, loopback):

4. the follower's catch-up: ``fslog replicate --from HOST:PORT --once`` copying the N
   records of (1) — records/s and the ratio to (1) (goal: at least 0.8x). Both are whole
   processes, start-up included (Python, the CLI, kio; the follower's connection,
   Metadata, configs, offsets, groups); at 1,000,000 records that is a good part of the
   follower's time, so the same two commands with nothing to copy are timed too, and
   the steady-state rates (start-up subtracted) printed beside;
5. replication lag while following, as (3), the follower fetching from the server;
6. acks=all latency: a confluent-kafka producer sends one record at a time and waits
   for its acknowledgement, first with no follower, then with one network follower in
   sync (``min.insync.replicas=2``: every acknowledgement waited for it) — p50, p99 and
   the ratio of the p50s (goal: at most 2x).

Usage: scripts/bench-replication [--records N] [--rate R] [--seconds S] [--acks N]"""

from __future__ import annotations

import argparse
import os
import resource
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


def timed(args: list[str], stdin=None) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one fslog command."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(fslog_cmd() + args, stdin=stdin, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


PAD = "x" * 60


class Server:
    """``fslog serve`` on ``root``, a free loopback port."""

    def __init__(self, root: str):
        self.proc = subprocess.Popen(fslog_cmd() + ["serve", "--listen", "127.0.0.1:0"],
                                     env=dict(os.environ, FSLOG_ROOT=root),
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if b"listening on" in line:
                self.bootstrap = line.split(b"listening on ")[1].split()[0].decode()
                break
        else:
            raise SystemExit("fslog serve did not start")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def lag_line(kind: str, leader_root: str, follower_root: str, source: str, topic: str,
             args) -> str:
    """A library producer appends ``args.rate`` records/s on the leader's root (a batch
    every 10 ms, flushed) while ``fslog replicate --from source`` follows; the lag of a
    batch: from its flush returning to the follower's log-end offset covering it."""
    la = fslog.Log(leader_root)
    la.create_topic(topic)
    f = subprocess.Popen(fslog_cmd() + ["--root", follower_root, "replicate", "--from", source,
                                        "--quiet", "--topics", topic])
    try:
        lb = fslog.Log(follower_root)
        deadline = time.monotonic() + 60
        while not lb.exists(topic) and time.monotonic() < deadline:
            time.sleep(0.01)
        pb = lb.topic(topic).partition(0)
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

        per_batch = max(1, args.rate // 100)
        value = b'{"id":000000000,"user":"u-0000","pad":"' + PAD.encode() + b'"}'
        with la.producer(topic) as p:
            # measured from when the follower follows: a first record it has copied
            p.send(value)
            p.flush()
            while pb.end_offset() < 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            w = threading.Thread(target=watch, daemon=True)
            w.start()
            t_end = time.perf_counter() + args.seconds
            nxt = time.perf_counter()
            sent = 1
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
        return (f"lag ({kind} follower) at {args.rate:,} records/s over {args.seconds:.0f} s "
                f"({len(ms)} batches): p50 {pct(ms, 0.5):.1f} ms, p99 {pct(ms, 0.99):.1f} ms, "
                f"max {max(ms):.1f} ms")
    finally:
        f.terminate()
        f.wait(timeout=30)


def acks_all_latency(leader_root: str, bootstrap: str, follower_root: str, n: int) -> None:
    """One record at a time with acks=all: no follower (min.insync.replicas=1), then one
    network follower that every acknowledgement waits for (min.insync.replicas=2)."""
    from confluent_kafka import Producer
    la = fslog.Log(leader_root)
    la.create_topic("solo")
    la.create_topic("pair", config={"min.insync.replicas": 2})

    def run(topic: str) -> list[float]:
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                      "enable.idempotence": False})
        out: list[float] = []
        value = b'{"id":000000000,"user":"u-0000","pad":"' + PAD.encode() + b'"}'
        for i in range(n + 20):  # the first 20: connections, metadata, a follower catching up
            t0 = time.perf_counter()
            p.produce(topic, value)
            assert p.flush(60) == 0
            if i >= 20:
                out.append((time.perf_counter() - t0) * 1000)
        return out

    solo = run("solo")
    f = subprocess.Popen(fslog_cmd() + ["--root", follower_root, "replicate", "--from", bootstrap,
                                        "--quiet", "--topics", "pair"])
    try:
        pair = run("pair")  # NOT_ENOUGH_REPLICAS is retried by the client until it is in sync
    finally:
        f.terminate()
        f.wait(timeout=30)
    for name, xs in (("no follower", solo), ("one follower", pair)):
        print(f"acks=all latency, {name:13s} ({n} records, one at a time): "
              f"p50 {pct(xs, 0.5):.2f} ms, p99 {pct(xs, 0.99):.2f} ms")
    print(f"acks=all with one follower / with none (p50): {pct(pair, 0.5) / pct(solo, 0.5):.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--acks", type=int, default=1000, help="records per acks=all latency case")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fslog-bench-replication-")
    try:
        a, b = os.path.join(work, "a"), os.path.join(work, "b")
        data = os.path.join(work, "in.jsonl")
        pad = PAD
        with open(data, "w") as f:
            for i in range(args.records):
                f.write(f'{{"id":{i:09d},"user":"u-{i % 1000:04d}","pad":"{pad}"}}\n')
        print(f"load average {os.getloadavg()[0]:.2f} at the start")
        with open(data, "rb") as f:
            t_prod, c_prod = timed(["--root", a, "produce", "t", "--quiet"], stdin=f)
        with open(os.devnull, "rb") as f:  # start-up alone: a topic, no records
            t_prod0, c_prod0 = timed(["--root", a, "produce", "t0", "--quiet"], stdin=f)
        t_copy, c_copy = timed(["--root", b, "replicate", "--from", a, "--once", "--quiet"])
        n = args.records
        print(f"leader ingest  fslog produce            {n / t_prod:12,.0f} records/s  "
              f"({t_prod:.2f} s, {c_prod:.2f} CPU-s)")
        print(f"follower copy  fslog replicate --once   {n / t_copy:12,.0f} records/s  "
              f"({t_copy:.2f} s, {c_copy:.2f} CPU-s)  {t_prod / t_copy:.2f}x the leader's "
              f"ingest (CPU: {c_prod / c_copy:.2f}x)")

        # lag while following, from the root and from a server on it
        print(lag_line("file-root", a, os.path.join(work, "b2"), a, "live", args))
        srv = Server(a)
        try:
            c = os.path.join(work, "c")
            s0 = proc_cpu(srv.proc.pid)
            t_net, c_net = timed(["--root", c, "replicate", "--from", srv.bootstrap, "--once",
                                  "--quiet", "--topics", "t"])
            c_srv = proc_cpu(srv.proc.pid) - s0
            print(f"follower copy  replicate --from HOST:PORT --once {n / t_net:12,.0f} records/s  "
                  f"({t_net:.2f} s, {c_net:.2f} CPU-s + the server's {c_srv:.2f})  "
                  f"{t_prod / t_net:.2f}x the leader's ingest (CPU: {c_prod / (c_net + c_srv):.2f}x)")
            # the same commands with nothing to copy: what of the above is start-up
            t_net0, c_net0 = timed(["--root", os.path.join(work, "c0"), "replicate", "--from",
                                    srv.bootstrap, "--once", "--quiet", "--topics", "t0"])
            print(f"start-up alone (a topic, no records): fslog produce {t_prod0:.2f} s "
                  f"({c_prod0:.2f} CPU-s), replicate --from HOST:PORT --once {t_net0:.2f} s "
                  f"({c_net0:.2f} CPU-s)")
            sp, sn = max(t_prod - t_prod0, 1e-3), max(t_net - t_net0, 1e-3)
            print(f"steady state (start-up subtracted): leader ingest {n / sp:,.0f} records/s, "
                  f"network follower {n / sn:,.0f} records/s: {sp / sn:.2f}x (CPU: "
                  f"{(c_prod - c_prod0) / max(c_net - c_net0 + c_srv, 1e-3):.2f}x)")
            print(lag_line("network", a, os.path.join(work, "c2"), srv.bootstrap, "live2", args))
            acks_all_latency(a, srv.bootstrap, os.path.join(work, "d"), args.acks)
        finally:
            srv.stop()
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
