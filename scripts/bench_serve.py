"""fslog serve benchmark: the same N records of ~100 bytes through Kafka clients and
through the fslog CLI, in one run.

Cases: confluent-kafka producer -> serve with acks=1 and acks=all; confluent-kafka
consumer and ``kcat -C -e`` from serve; ``fslog produce`` / ``fslog consume`` of the same
data (the reference). For each: client records/s, and for serve its own CPU seconds
per million records (user+sys of the server process over the case, from /proc: steadier
than wall time on a shared machine). Then: produce -> consume latency through serve at
1,000 records/s (p50/p99/max), and 1,000 idle connections held (server RSS before and
after). Kafka's published single-node figures are printed beside.

Usage: scripts/bench-serve [--records N] [--skip-latency] [--skip-idle]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

KAFKA_PRODUCE = 821_557
KAFKA_CONSUME = 940_521
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Server:
    def __init__(self, root: str, fslog: str):
        env = dict(os.environ, FSLOG_ROOT=root)
        self.proc = subprocess.Popen([fslog, "serve", "--listen", "127.0.0.1:0",
                                      "--log-level", "warning",
                                      "--max-connections", "5000"],
                                     env=env)  # stderr: the terminal
        # the "listening" line is at info level: read the port from the registration
        from fslog.storage.servers import running_servers
        deadline = time.monotonic() + 30
        while True:
            got = running_servers(root)
            if got and got[0].get("listen", "").rsplit(":", 1)[-1] not in ("", "0"):
                self.bootstrap = got[0]["listen"]
                break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("fslog serve did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def values(n: int) -> list[bytes]:
    return [b'{"id": %08d, "user": "u-%05d", "kind": "order", "amount": %6d, "note": "xxxxxxxxxxxxxxxxxxxxxxxx"}'
            % (i, i % 10000, i % 999983) for i in range(n)]


def row(name, n, secs, cpu=None, note=""):
    rate = n / secs if secs > 0 else float("inf")
    cpu_s = f"{cpu * 1e6 / n:8.2f}" if cpu is not None else "       -"
    print(f"{name:<44} {rate:>12,.0f} {cpu_s:>10}   {note}", flush=True)
    return rate


def bench_produce(srv, topic, data, acks):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": srv.bootstrap, "acks": acks, "linger.ms": 20,
                  "batch.size": 1_000_000, "compression.type": "none",
                  "queue.buffering.max.messages": 2_000_000,
                  "queue.buffering.max.kbytes": 2_000_000, "partitioner": "murmur2_random"})
    c0 = cpu_seconds(srv.proc.pid)
    t0 = time.perf_counter()
    produce = p.produce
    for v in data:
        try:
            produce(topic, v)
        except BufferError:
            p.poll(0.01)
            produce(topic, v)
    left = p.flush(120)
    secs = time.perf_counter() - t0
    assert left == 0, f"{left} records not delivered"
    return secs, cpu_seconds(srv.proc.pid) - c0


def bench_consume(srv, topic, n):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "bench",
                  "enable.auto.commit": False, "fetch.max.bytes": 52428800,
                  "max.partition.fetch.bytes": 10485760, "queued.min.messages": 1000000})
    c.assign([TopicPartition(topic, 0, 0)])
    c0 = cpu_seconds(srv.proc.pid)
    t0 = time.perf_counter()
    got = 0
    while got < n:
        msgs = c.consume(100000, 5)
        got += sum(1 for m in msgs if not m.error())
        if not msgs and time.perf_counter() - t0 > 300:
            break
    secs = time.perf_counter() - t0
    cpu = cpu_seconds(srv.proc.pid) - c0
    c.close()
    assert got >= n, f"consumed {got} of {n}"
    return secs, cpu


def bench_kcat(srv, topic, n):
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        return None
    c0 = cpu_seconds(srv.proc.pid)
    t0 = time.perf_counter()
    p = subprocess.Popen([kcat, "-b", srv.bootstrap, "-C", "-t", topic, "-e", "-q",
                          "-X", "fetch.max.bytes=52428800",
                          "-X", "max.partition.fetch.bytes=10485760"],
                         stdout=subprocess.PIPE)
    lines = 0
    for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
        lines += chunk.count(b"\n")
    p.wait()
    secs = time.perf_counter() - t0
    assert lines >= n, f"kcat read {lines} of {n}"
    return secs, cpu_seconds(srv.proc.pid) - c0


def bench_latency(srv, topic, rate=1000, seconds=10):
    from confluent_kafka import Consumer, Producer, TopicPartition
    p = Producer({"bootstrap.servers": srv.bootstrap, "acks": 1, "linger.ms": 0})
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "lat",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 500,
                  "fetch.min.bytes": 1})
    c.assign([TopicPartition(topic, 0, -1)])  # the end
    c.consume(1, 2)
    lat: list[float] = []
    total = rate * seconds
    stop = threading.Event()

    def consume():
        while not stop.is_set() and len(lat) < total:
            m = c.poll(0.2)  # (consume(N, t) waits for N records or t)
            if m is not None and not m.error():
                lat.append(time.time() - float(m.value().decode()))

    t = threading.Thread(target=consume)
    t.start()
    start = time.perf_counter()
    for i in range(total):
        target = start + i / rate
        d = target - time.perf_counter()
        if d > 0:
            time.sleep(d)
        p.produce(topic, b"%.6f" % time.time())
        p.poll(0)
    p.flush(30)
    t.join(timeout=30)
    stop.set()
    c.close()
    lat.sort()
    if not lat:
        return None
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000  # noqa: E731
    return q(0.5), q(0.99), lat[-1] * 1000, len(lat)


def bench_idle(srv, count=1000):
    before = rss_mb(srv.proc.pid)
    host, port = srv.bootstrap.rsplit(":", 1)
    socks = []
    import struct
    frame = struct.pack(">ihhih", 10, 18, 0, 1, -1)  # ApiVersions v0, no client id
    for _ in range(count):
        s = socket.create_connection((host, int(port)), timeout=30)
        s.sendall(frame)  # one request each: the server holds a live connection
        s.recv(4)
        socks.append(s)
    time.sleep(1.0)
    after = rss_mb(srv.proc.pid)
    from fslog.storage.servers import running_servers
    time.sleep(1.2)
    conns = running_servers(os.environ["FSLOG_ROOT"])[0].get("connections")
    for s in socks:
        s.close()
    return before, after, conns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-idle", action="store_true")
    args = ap.parse_args()
    import signal
    # SIGTERM (timeout, Ctrl-C's cousin) unwinds through the finally that stops the server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n = args.records
    fslog = shutil.which("fslog") or os.path.join(os.path.dirname(sys.executable), "fslog")
    work = tempfile.mkdtemp(prefix="fslog-bench-serve-")
    root = os.path.join(work, "root")
    os.environ["FSLOG_ROOT"] = root
    data = values(n)
    size = sum(map(len, data)) / n
    inp = os.path.join(work, "in.jsonl")
    with open(inp, "wb") as f:
        f.write(b"\n".join(data) + b"\n")
    print(f"{n:,} records of {size:.0f} bytes; {os.cpu_count()} cores; Python "
          f"{sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f} at the start",
          flush=True)
    print(f"{'case':<44} {'records/s':>12} {'serve CPU s/M':>10}")
    try:
        subprocess.run([fslog, "topic", "create", "cli"], check=True)
        t0 = time.perf_counter()
        subprocess.run([fslog, "produce", "cli"], stdin=open(inp, "rb"), check=True)
        row("fslog produce (reference)", n, time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([fslog, "consume", "cli"], stdout=subprocess.DEVNULL, check=True)
        row("fslog consume (reference)", n, time.perf_counter() - t0)
        srv = Server(root, fslog)
        try:
            for acks, topic in ((1, "acks1"), ("all", "acksall")):
                subprocess.run([fslog, "topic", "create", topic], check=True)
                secs, cpu = bench_produce(srv, topic, data, acks)
                row(f"confluent-kafka produce -> serve, acks={acks}", n, secs, cpu)
            secs, cpu = bench_consume(srv, "acks1", n)
            row("confluent-kafka consume <- serve", n, secs, cpu)
            got = bench_kcat(srv, "acks1", n)
            if got is None:
                print("kcat -C -e <- serve: kcat not found (apt-get install kcat)")
            else:
                row("kcat -C -e <- serve", n, *got)
            print(f"{'Kafka, published single producer':<44} {KAFKA_PRODUCE:>12,}")
            print(f"{'Kafka, published single consumer':<44} {KAFKA_CONSUME:>12,}")
            if not args.skip_latency:
                subprocess.run([fslog, "topic", "create", "lat"], check=True)
                got = bench_latency(srv, "lat")
                if got:
                    print(f"latency produce -> consume through serve at 1,000 records/s: "
                          f"p50 {got[0]:.2f} ms, p99 {got[1]:.2f} ms, max {got[2]:.1f} ms "
                          f"({got[3]:,} records)", flush=True)
            if not args.skip_idle:
                before, after, conns = bench_idle(srv)
                print(f"1,000 idle connections: serve RSS {before:.0f} MB -> {after:.0f} MB "
                      f"({(after - before) * 1024 / 1000:.1f} KB each; {conns} open)")
        finally:
            srv.stop()
        print(f"load average {os.getloadavg()[0]:.1f} at the end (other work on the machine "
              f"slows every figure: compare within the run)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
