"""fslog benchmark: records/s through the CLI and the library, beside references measured
in the same run on the same data (this machine is shared and noisy: compare ratios).

Each case runs as its own process; wall time covers the whole process (startup included),
peak memory is the child's max RSS. Every case is run --repeat times; the best is kept.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from peak_rss import run_sampled

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FSLOG = [sys.executable, "-m", "fslog.cli.main"]
PY = sys.executable

LINE_COPY = r"""
import os, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f, open(dst, "wb") as out:
    for line in f:
        out.write(line)
    out.flush()
    os.fsync(out.fileno())
"""

LIB_PRODUCE = r"""
import sys, fslog
root, src = sys.argv[1], sys.argv[2]
log = fslog.Log(root)
with open(src, "rb") as f, log.producer("lib") as p:
    for line in f:
        p.send(line[:-1])
    p.flush()
"""

LIB_PRODUCE_BULK = r"""
import sys, fslog
root, src = sys.argv[1], sys.argv[2]
log = fslog.Log(root)
with open(src, "rb") as f, log.producer("libbulk") as p:
    while True:
        lines = f.readlines(1 << 20)
        if not lines:
            break
        p.send_values([l[:-1] for l in lines])
    p.flush()
"""

# The reference for JSON lines: what Python itself allows, with the JSON library fslog uses
JSON_LOOP = r"""
import os, sys, orjson
src, dst, field = sys.argv[1], sys.argv[2], sys.argv[3]
loads = orjson.loads
with open(src, "rb") as f, open(dst, "wb") as out:
    for line in f:
        key = loads(line)[field]
        out.write(line)
    out.flush()
    os.fsync(out.fileno())
"""

KEYED_DATA = r"""
import sys
src, dst, keys = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, "rb") as f, open(dst, "wb") as out:
    out.writelines(b"k%d:%s" % (i % keys, line) for i, line in enumerate(f))
"""

COMPACT_DATA = r"""
import sys
dst, n, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pad = b"." * 60
with open(dst, "wb") as out:
    for start in range(0, n, 65536):
        out.writelines(b'u-%08d:{"user":"u-%08d","n":%d,"pad":"%s"}\n' % (i % keys, i % keys, i, pad)
                       for i in range(start, min(n, start + 65536)))
"""

LIB_READ = r"""
import sys, fslog
root, topic = sys.argv[1], sys.argv[2]
n = 0
for rec in fslog.Log(root).reader(topic):
    n += 1
print(n, file=sys.stderr)
"""


# The Python queues people reach for today, doing the same work: put every line, then (in a
# second process) get every line. Slow ones run on a slice of the data (see "records").
# Durability as each library does it by default; noted in the table.
ALTERNATIVES = {
    "queuelib FifoDiskQueue": (1_000_000, "no fsync",
        "from queuelib import FifoDiskQueue as Q\nq = Q(path)",
        "for l in lines: q.push(l)\nq.close()",
        "n = 0\nwhile q.pop() is not None: n += 1\nq.close()"),
    "diskcache Deque": (100_000, "SQLite WAL, synchronous=NORMAL",
        "from diskcache import Deque\nq = Deque(directory=path)",
        "for l in lines: q.append(l)",
        "n = 0\nwhile True:\n    try: q.popleft()\n    except IndexError: break\n    n += 1"),
    "litequeue": (10_000, "SQLite WAL, synchronous=NORMAL",
        "import os\nfrom litequeue import LiteQueue\nos.makedirs(path, exist_ok=True)\nq = LiteQueue(os.path.join(path, 'q.db'))",
        "for l in lines: q.put(l.decode())\nq.close()",
        "n = 0\nwhile True:\n    m = q.pop()\n    if m is None: break\n    q.done(m.message_id)\n    n += 1"),
    "persist-queue Queue (file)": (10_000, "fsync per put",
        "from persistqueue import Queue\nq = Queue(path)",
        "for l in lines: q.put(l)",
        "n = 0\nwhile q.qsize():\n    q.get()\n    q.task_done()\n    n += 1"),
    "persist-queue SQLiteQueue": (10_000, "SQLite, commit per put",
        "from persistqueue import SQLiteQueue\nq = SQLiteQueue(path, auto_commit=True)",
        "for l in lines: q.put(l)",
        "n = 0\nwhile q.qsize():\n    q.get()\n    n += 1"),
}

ALT_SCRIPT = """
import sys
path, src, count, phase = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
lines = []
if phase == "put":
    with open(src, "rb") as f:
        for i, line in enumerate(f):
            if i >= count:
                break
            lines.append(line[:-1])
{setup}
if phase == "put":
{put}
else:
{get}
    assert n == count, (n, count)
"""


def _indent(code: str) -> str:
    return "\n".join("    " + line for line in code.splitlines())


def alternatives(work: str, data: str, n: int, repeat: int, add) -> None:
    for name, (limit, note, setup, put, get) in ALTERNATIVES.items():
        count = min(n, limit)
        script = ALT_SCRIPT.format(setup=setup, put=_indent(put), get=_indent(get))
        path = os.path.join(work, "alt")
        probe = subprocess.run([PY, "-c", f"path = {os.path.join(work, 'probe')!r}\n{setup}"],
                               capture_output=True)
        shutil.rmtree(os.path.join(work, "probe"), ignore_errors=True)
        if probe.returncode:
            print(f"  {name}: not installed (pip install -e '.[bench]'), skipped", file=sys.stderr)
            continue
        size = 0
        with open(data, "rb") as f:
            for i, line in enumerate(f):
                if i >= count:
                    break
                size += len(line)
        slice_note = note + ("" if count == n else f"; {count:,}-record slice")

        def put_phase():
            shutil.rmtree(path, ignore_errors=True)
            return run([PY, "-c", script, path, data, str(count), "put"])

        def get_phase():
            shutil.rmtree(path, ignore_errors=True)
            run([PY, "-c", script, path, data, str(count), "put"])
            return run([PY, "-c", script, path, data, str(count), "get"])
        reps = repeat if count >= 100_000 else 1
        add(f"{name}: put", "alternative", *best_of(reps, put_phase), records=count, nbytes=size,
            note=slice_note)
        add(f"{name}: get", "alternative", *best_of(reps, get_phase), records=count, nbytes=size,
            note=slice_note)
        shutil.rmtree(path, ignore_errors=True)


def run(cmd, stdin=None, stdout=None, env=None):
    """Run one process; return (seconds, peak RSS in MB)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=stdin, stdout=stdout or subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode != 0:
        raise SystemExit(f"benchmark step failed ({p.returncode}): {' '.join(cmd)}\n{err}")
    run.cpu = ru.ru_utime + ru.ru_stime  # type: ignore[attr-defined]  # (the keyed cases)
    return dt, ru.ru_maxrss / 1024.0


def latency(root: str, seconds: float = 5.0, rate: int = 1000) -> dict:
    """End-to-end latency: a following group member, a producer fed through a pipe at
    ``rate`` records/s; each record carries its send time (CLOCK_MONOTONIC, shared by all
    processes of the machine) and the consumer's stdout is timestamped on arrival."""
    import threading
    subprocess.run(FSLOG + ["--root", root, "topic", "create", "lat", "--if-not-exists"],
                   check=True, capture_output=True)
    cons = subprocess.Popen(FSLOG + ["--root", root, "consume", "lat", "--group", "lat", "--follow",
                                     "--offset", "end"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    samples: list[int] = []

    def reader():
        for line in cons.stdout:
            samples.append(time.monotonic_ns() - int(line.split(b" ", 1)[0]))
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    time.sleep(1.0)  # let the member join and take its partition
    prod = subprocess.Popen(FSLOG + ["--root", root, "produce", "lat"], stdin=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # the producer's startup is not part of the latency
    total = int(seconds * rate)
    t0 = time.monotonic()
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        prod.stdin.write(b"%d %d\n" % (time.monotonic_ns(), i))
        prod.stdin.flush()
    prod.stdin.close()
    prod.wait()
    deadline = time.monotonic() + 10
    while len(samples) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    cons.terminate()
    cons.wait()
    got = sorted(samples)
    if not got:
        raise SystemExit("latency benchmark: the consumer received nothing")

    def pct(q):
        return got[min(len(got) - 1, int(q * len(got)))] / 1e6
    return {"records": total, "received": len(got), "rate": rate, "p50_ms": round(pct(0.50), 2),
            "p99_ms": round(pct(0.99), 2), "max_ms": round(got[-1] / 1e6, 2)}


def big_topic(work: str, records: int, env) -> dict:
    """Memory while consuming a large topic (~1 GB with the default 10,000,000 records of
    ~106 bytes): through the CLI and through the library reader."""
    data = os.path.join(work, "big.jsonl")
    root = os.path.join(work, "bigroot")
    subprocess.run([PY, os.path.join(HERE, "gen-sample-data"), "--bench", str(records), data],
                   check=True, stdout=sys.stderr)
    with open(data, "rb") as f:
        run(FSLOG + ["--root", root, "produce", "big"], stdin=f, env=env)
    os.unlink(data)
    size = sum(os.path.getsize(os.path.join(d, x)) for d, _, xs in os.walk(os.path.join(root, "topics"))
               for x in xs if x.endswith(".log"))
    out = {"records": records, "log_bytes": size, "cases": []}
    for name, cmd in (("fslog consume (CLI)", FSLOG + ["--root", root, "consume", "big"]),
                      ("library TopicReader iteration", [PY, "-c", LIB_READ, root, "big"])):
        dt, _cpu, mem, _out = run_sampled(cmd, env)
        out["cases"].append({"case": name, "records_per_s": round(records / dt), **mem})
        print(f"  {name}, {size / 1e9:.2f} GB topic: {records / dt:,.0f} records/s, peak RSS "
              f"{mem['VmRSS']} MB (anonymous {mem['RssAnon']} MB, file-backed {mem['RssFile']} MB)",
              file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)
    return out


def wait_for_cleaners(root: str) -> None:
    """Block until no background compaction runs under ``root``: a producer that rolls a
    segment of a compacted topic hands its partition's cleaner lock to a detached process
    that outlives it, so the next case must not delete the root under it (nor share the
    CPU with it)."""
    for path in glob.glob(os.path.join(root, "**", ".cleaner.lock"), recursive=True):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)


def keyed(work: str, data: str, n: int, repeat: int, env, compaction_keys: int,
          compaction_only: bool = False) -> list[dict]:
    """The paths people use beside the fast one (issue 14): keyed, JSON and compacted
    produce and consume, each printed beside its reference from this same run
    (``compaction_only``: only keyed produce into a compacted topic beside a delete-policy
    one, and compaction itself)."""
    rows: list[dict] = []
    rate: dict[str, float] = {}
    root = os.path.join(work, "kroot")
    kdata = os.path.join(work, "keyed.txt")
    subprocess.run([PY, "-c", KEYED_DATA, data, kdata, "10000"], check=True)

    cpu_rate: dict[str, float] = {}

    def add(name, seconds, rss, cpu, ref=None, records=n, target=None, note=""):
        rate[name] = records / seconds
        cpu_rate[name] = records / cpu
        row = {"case": name, "records": records, "seconds": round(seconds, 4),
               "records_per_s": round(records / seconds), "peak_rss_mb": round(rss, 1),
               "cpu_seconds": round(cpu, 3), "reference": ref, "ratio": None,
               "cpu_ratio": None, "target": target, "note": note}
        if ref is not None:
            row["ratio"] = round(rate[name] / rate[ref], 2)
            # by CPU time (user + sys of the process): what a loaded machine blurs less
            row["cpu_ratio"] = round(cpu_rate[name] / cpu_rate[ref], 2)
        rows.append(row)
        vs = f"  {row['ratio']:.2f}x (CPU {row['cpu_ratio']:.2f}x) {ref}" + \
            (f" (target >= {target}x)" if target else "") \
            if ref is not None else (f"  (target >= {target})" if target else "")
        print(f"  {name:<52} {records / seconds:>12,.0f} records/s{vs}", file=sys.stderr)

    def produce(topic, src, *opts, config=(), partitions=4):
        def go():
            wait_for_cleaners(root)
            shutil.rmtree(root, ignore_errors=True)
            cfg = [x for c in config for x in ("--config", c)]
            subprocess.run(FSLOG + ["--root", root, "topic", "create", topic, "--partitions",
                                    str(partitions), *cfg], check=True, capture_output=True)
            with open(src, "rb") as f:
                return run(FSLOG + ["--root", root, "produce", topic, *opts], stdin=f, env=env)
        return go

    def consume(topic, *opts):
        def go():
            with open(os.devnull, "wb") as o:
                return run(FSLOG + ["--root", root, "consume", topic, *opts], stdout=o, env=env)
        return go

    def best_of(k, fn):  # (best wall seconds, its peak RSS, least CPU seconds)
        results = []
        for _ in range(k):
            dt, rss = fn()
            results.append((dt, rss, run.cpu))  # type: ignore[attr-defined]
        dt, rss, _ = min(results)
        return dt, rss, min(r[2] for r in results)

    print(f"  load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)
    if not compaction_only:
        others(add, produce, consume, best_of, work, data, kdata, repeat, env, root)
    # compacted topics: the same keyed lines, 8 MiB segments, compact vs delete
    seg = "segment.bytes=8388608"
    delete_p = "fslog produce -K : into delete-policy topic (8 MiB seg.)"
    add(delete_p, *best_of(repeat, produce("c", kdata, "-K", ":", config=[seg], partitions=1)))
    add("fslog produce -K : into compacted topic (8 MiB seg.)",
        *best_of(repeat, produce("c", kdata, "-K", ":", config=[seg, "cleanup.policy=compact"],
                                 partitions=1)), ref=delete_p, target="1/1.2=0.83")
    wait_for_cleaners(root)
    shutil.rmtree(root, ignore_errors=True)
    os.unlink(kdata)
    # compaction itself: N keyed records over 10,000 keys, then over N distinct keys
    cdata = os.path.join(work, "compact.txt")
    for keys, buf in ((10_000, None), (compaction_keys, 16 << 20)):
        count = n if keys == 10_000 else compaction_keys
        subprocess.run([PY, "-c", COMPACT_DATA, cdata, str(count), str(keys)], check=True)
        cfg = [seg, "cleanup.policy=compact", "min.cleanable.dirty.ratio=1.0"]
        if buf:
            cfg.append(f"log.cleaner.dedupe.buffer.size={buf}")

        def compact():
            produce("c", cdata, "-K", ":", config=cfg, partitions=1)()
            return run(FSLOG + ["--root", root, "clean", "c", "--compact-now", "--quiet"], env=env)
        try:
            dt, rss, cpu = best_of(repeat if keys == 10_000 else 1, compact)
        except (SystemExit, subprocess.CalledProcessError) as e:
            print(f"  compaction of {keys:,} keys failed: {str(e)[:300]}", file=sys.stderr)
            continue
        name = f"fslog clean --compact-now ({count:,} records, {keys:,} keys)"
        note = f"peak RSS {rss:.0f} MB" + (f" with a {buf >> 20} MiB dedupe buffer" if buf else "") \
            + f"; {count / cpu:,.0f} records/s by CPU time"
        add(name, dt, rss, cpu, records=count, note=note, target="1,000,000 records/s")
        print(f"    {note}", file=sys.stderr)
    if os.path.exists(cdata):
        os.unlink(cdata)
    shutil.rmtree(root, ignore_errors=True)
    print(f"  load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)
    return rows


def others(add, produce, consume, best_of, work, data, kdata, repeat, env, root) -> None:
    """The keyed and JSON produce and consume rows of ``keyed``."""
    raw_p = "fslog produce (raw, unkeyed, 4 partitions)"
    add(raw_p, *best_of(repeat, produce("t", data)))
    add("fslog produce -K : (10,000 keys, 4 partitions)",
        *best_of(repeat, produce("t", kdata, "-K", ":")), ref=raw_p, target=0.6)
    loop = "python loop: orjson parse, take key, write line + fsync"
    out = os.path.join(work, "loop.out")
    add(loop, *best_of(repeat, lambda: run([PY, "-c", JSON_LOOP, data, out, "user_id"])))
    os.unlink(out)
    add("fslog produce --format json (1 partition)",
        *best_of(repeat, produce("t", data, "--format", "json", partitions=1)), ref=loop, target=0.6)
    add("fslog produce --format json --key-field user_id (4 p.)",
        *best_of(repeat, produce("t", data, "--format", "json", "--key-field", "user_id")),
        ref=loop, target=0.6)
    # consume: the same lines unkeyed and keyed, 4 partitions each
    produce("t", data)()
    raw_c = "fslog consume (unkeyed, raw)"
    add(raw_c, *best_of(repeat, consume("t")))
    subprocess.run(FSLOG + ["--root", root, "topic", "create", "k", "--partitions", "4"],
                   check=True, capture_output=True)
    with open(kdata, "rb") as f:
        run(FSLOG + ["--root", root, "produce", "k", "-K", ":"], stdin=f, env=env)
    keyed_c = "fslog consume (keyed, raw)"
    add(keyed_c, *best_of(repeat, consume("k")), ref=raw_c, target=0.8)
    add("fslog consume --format json (keyed)", *best_of(repeat, consume("k", "--format", "json")),
        ref=keyed_c, target=0.5)


def best_of(k, fn):
    results = [fn() for _ in range(k)]
    return min(results, key=lambda r: r[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-alternatives", action="store_true",
                    help="skip the other Python queues (they take a few minutes)")
    ap.add_argument("--big", type=int, nargs="?", const=10_000_000, default=0, metavar="N",
                    help="also consume a ~1 GB topic (N records, default 10,000,000) and report "
                         "memory: peak RSS, and of it anonymous (the process's own) and "
                         "file-backed (mapped segment pages); off by default")
    ap.add_argument("--keyed-only", action="store_true",
                    help="run only the keyed, JSON and compacted cases beside their references")
    ap.add_argument("--compaction-only", action="store_true",
                    help="of those, only keyed produce into a compacted topic beside a "
                         "delete-policy one, and compaction itself")
    ap.add_argument("--compaction-keys", type=int, default=1_000_000, metavar="N",
                    help="distinct keys of the compaction memory case (default 1,000,000)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench-results", "latest.json"))
    args = ap.parse_args()

    # Bytecode for fslog, as an installed package has it: otherwise, with
    # PYTHONDONTWRITEBYTECODE set, every process would compile fslog from source.
    subprocess.run([PY, "-m", "compileall", "-q", os.path.join(REPO, "fslog")], check=True)
    work = tempfile.mkdtemp(prefix="fslog-bench.")
    try:
        data = os.path.join(work, "data.jsonl")
        subprocess.run([PY, os.path.join(HERE, "gen-sample-data"), "--bench", str(args.records), data],
                       check=True, stdout=sys.stderr)
        size = os.path.getsize(data)
        n = args.records
        rows = []

        def add(name, kind, seconds, rss, records=n, nbytes=size, note=""):
            rows.append({"case": name, "kind": kind, "records": records, "seconds": round(seconds, 4),
                         "records_per_s": round(records / seconds), "mb_per_s": round(nbytes / seconds / 1e6, 1),
                         "peak_rss_mb": round(rss, 1), "note": note})
            print(f"  {name:<44} {records / seconds:>12,.0f} records/s", file=sys.stderr)

        print(f"benchmark: {n:,} records, {size / 1e6:.1f} MB, best of {args.repeat}", file=sys.stderr)
        env = dict(os.environ)
        if args.keyed_only or args.compaction_only:
            krows = keyed(work, data, n, args.repeat, env, args.compaction_keys,
                          args.compaction_only)
            print(markdown_keyed(krows))
            return
        # references
        def cat():
            out = os.path.join(work, "cat.out")
            with open(data, "rb") as f, open(out, "wb") as o:
                r = run(["cat"], stdin=f, stdout=o)
            os.unlink(out)
            return r
        add("cat > file (I/O ceiling)", "reference", *best_of(args.repeat, cat))

        def line_copy():
            out = os.path.join(work, "copy.out")
            r = run([PY, "-c", LINE_COPY, data, out])
            os.unlink(out)
            return r
        ref = best_of(args.repeat, line_copy)
        add("python line copy + fsync", "reference", *ref)

        def fresh_root():
            root = os.path.join(work, "root")
            shutil.rmtree(root, ignore_errors=True)
            return root

        env = dict(os.environ)

        def cli_produce():
            root = fresh_root()
            with open(data, "rb") as f:
                return run(FSLOG + ["--root", root, "produce", "bench"], stdin=f, env=env)
        add("fslog produce (CLI, stdin -> durable log)", "fslog", *best_of(args.repeat, cli_produce),
            note="fsync before exit 0")
        root = os.path.join(work, "root")

        def cli_consume(fmt):
            def go():
                with open(os.devnull, "wb") as o:
                    return run(FSLOG + ["--root", root, "consume", "bench", "--format", fmt], stdout=o, env=env)
            return go
        add("fslog consume (CLI, log -> stdout)", "fslog", *best_of(args.repeat, cli_consume("raw")))
        add("fslog consume --format json (CLI)", "fslog", *best_of(args.repeat, cli_consume("json")))

        # consumer groups: the same records in a 2-partition topic, read by a group of 1
        # and by a group of 2 members started together (wall time until both are done)
        with open(data, "rb") as f:
            subprocess.run(FSLOG + ["--root", root, "topic", "create", "bench2", "--partitions", "2"],
                           check=True, capture_output=True)
            run(FSLOG + ["--root", root, "produce", "bench2"], stdin=f, env=env)
        groups_run = [0]

        def group_consume(members):
            def go():
                groups_run[0] += 1
                g = f"bench-{members}-{groups_run[0]}"
                t0 = time.perf_counter()
                procs = [subprocess.Popen(FSLOG + ["--root", root, "consume", "bench2", "--group", g],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
                         for _ in range(members)]
                rss = 0.0
                for p in procs:
                    _, status, ru = os.wait4(p.pid, 0)
                    if os.waitstatus_to_exitcode(status):
                        raise SystemExit(f"group consume failed: {p.stderr.read().decode()}")
                    p.stderr.close()
                    rss = max(rss, ru.ru_maxrss / 1024.0)
                return time.perf_counter() - t0, rss
            return go
        add("fslog consume --group (1 member, 2 partitions)", "fslog", *best_of(args.repeat, group_consume(1)))
        add("fslog consume --group (2 members, 2 partitions)", "fslog", *best_of(args.repeat, group_consume(2)),
            note="wall time until both members are done")

        def startup():
            subprocess.run([PY, "-c", "pass"])
            t0 = time.perf_counter()
            p = subprocess.run(FSLOG + ["--root", root, "produce", "one"], input=b"hello\n",
                               capture_output=True)
            dt = time.perf_counter() - t0
            if p.returncode:
                raise SystemExit(p.stderr.decode())
            return dt, 0.0
        st = best_of(max(args.repeat, 5), startup)
        rows.append({"case": "fslog produce of one record (startup)", "kind": "fslog", "records": 1,
                     "seconds": round(st[0], 4), "records_per_s": None, "mb_per_s": None,
                     "peak_rss_mb": None, "note": f"{st[0] * 1000:.0f} ms"})
        print(f"  {'fslog produce of one record (startup)':<44} {st[0] * 1000:>9.0f} ms", file=sys.stderr)

        def lib(script, *extra):
            def go():
                return run([PY, "-c", script, *extra], env=env)
            return go
        add("library Producer.send + flush", "fslog",
            *best_of(args.repeat, lambda: (shutil.rmtree(os.path.join(root, "topics", "lib"), ignore_errors=True), lib(LIB_PRODUCE, root, data)())[1]))
        add("library Producer.send_values + flush", "fslog",
            *best_of(args.repeat, lambda: (shutil.rmtree(os.path.join(root, "topics", "libbulk"), ignore_errors=True), lib(LIB_PRODUCE_BULK, root, data)())[1]))
        add("library TopicReader iteration", "fslog", *best_of(args.repeat, lib(LIB_READ, root, "bench")))

        print("keyed, JSON and compacted paths:", file=sys.stderr)
        krows = keyed(work, data, n, args.repeat, env, args.compaction_keys)

        if not args.no_alternatives:
            alternatives(work, data, n, args.repeat, add)

        big = big_topic(work, args.big, env) if args.big else None

        lat = latency(os.path.join(work, "latroot"))
        print(f"  end-to-end latency at {lat['rate']} records/s: p50 {lat['p50_ms']} ms, "
              f"p99 {lat['p99_ms']} ms ({lat['received']}/{lat['records']} received)", file=sys.stderr)

        ref_rate = n / ref[0]
        for r in rows:
            r["ratio_to_line_copy"] = round(r["records_per_s"] / ref_rate, 2) if r["records_per_s"] else None
        machine = {"python": platform.python_version(), "system": platform.system(),
                   "machine": platform.machine(), "cpus": os.cpu_count(),
                   "processor": _cpu_model()}
        result = {"records": n, "bytes": size, "repeat": args.repeat, "machine": machine,
                  "date": time.strftime("%Y-%m-%d"), "rows": rows, "keyed": krows, "latency": lat, "big": big}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(markdown(result))
        print(f"\n(written to {os.path.relpath(args.out, REPO)})", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def markdown_keyed(rows) -> str:
    lines = ["| case | records/s | reference (same run) | ratio (by CPU time) | target | notes |",
             "|---|---:|---|---:|---:|---|"]
    for r in rows:
        ratio = f"{r['ratio']}x ({r.get('cpu_ratio')}x)" if r["ratio"] is not None else ""
        target = (f">= {r['target']}x" if r["reference"] else f">= {r['target']}") if r["target"] else ""
        lines.append(f"| {r['case']} | {r['records_per_s']:,} | {r['reference'] or ''} | {ratio} | "
                     f"{target} | {r['note']} |")
    return "\n".join(lines)


def markdown(result) -> str:
    m = result["machine"]
    lines = [f"{result['records']:,} records of ~{result['bytes'] / result['records']:.0f} bytes; "
             f"{m['cpus']} cores ({m['processor']}), Python {m['python']}; best of {result['repeat']}.",
             "",
             "| case | records/s | MB/s | vs. line copy | peak RSS MB | notes |",
             "|---|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        if r["records_per_s"] is None:
            lines.append(f"| {r['case']} | {r['note']} | | | | |")
            continue
        lines.append(f"| {r['case']} | {r['records_per_s']:,} | {r['mb_per_s']} | "
                     f"{r['ratio_to_line_copy']}x | {r['peak_rss_mb']} | {r['note']} |")
    if result.get("keyed"):
        lines += ["", markdown_keyed(result["keyed"])]
    lat = result.get("latency")
    if lat:
        lines += ["", f"End-to-end latency (produce → a following group member's stdout) at "
                      f"{lat['rate']} records/s: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
                      f"max {lat['max_ms']} ms ({lat['received']:,} of {lat['records']:,} received)."]
    big = result.get("big")
    if big:
        lines += ["", f"Consuming a {big['log_bytes'] / 1e9:.2f} GB topic ({big['records']:,} records):", "",
                  "| case | records/s | peak RSS MB | anonymous MB | file-backed MB |",
                  "|---|---:|---:|---:|---:|"]
        for c in big["cases"]:
            lines.append(f"| {c['case']} | {c['records_per_s']:,} | {c['VmRSS']} | {c['RssAnon']} | "
                         f"{c['RssFile']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
