"""Compaction benchmark: N keyed records over K keys into a compacted topic (through the
library, in batches of the producer's keyed shape), then one `fslog clean --compact-now`
in its own process, timed and sampled for peak RSS; beside it the peak RSS of the same
command on an empty topic (what the interpreter and fslog take: the constant).

Usage: scripts/bench-compaction [--records N] [--keys K] [--dedupe-buffer BYTES]
       scripts/bench-compaction --big    (10,000,000 records with 10,000,000 distinct keys
                                          and the default 128 MiB dedupe buffer: minutes,
                                          ~1.3 GB of disk)

The offset map is bounded by log.cleaner.dedupe.buffer.size: with more distinct keys than
fit, compaction takes several passes, and its peak RSS stays within the buffer plus the
constant (plus the file pages of the segments it reads, which the kernel may drop: shown
apart as file-backed)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from peak_rss import run_sampled

import fslog

HERE = os.path.dirname(os.path.abspath(__file__))
FSLOG = [sys.executable, "-m", "fslog.cli.main"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--segment-bytes", type=int, default=8 << 20)
    ap.add_argument("--dedupe-buffer", type=int, default=None, metavar="BYTES",
                    help="log.cleaner.dedupe.buffer.size (default: the topic default, 128 MiB)")
    ap.add_argument("--big", action="store_true",
                    help="10,000,000 records over 10,000,000 distinct keys (the memory case)")
    args = ap.parse_args()
    if args.big:
        args.records = args.keys = 10_000_000
    work = tempfile.mkdtemp(prefix="fslog-bench-compaction-")
    root = os.path.join(work, "root")
    try:
        log = fslog.Log(root)
        config = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": 1.0,
                  "segment.bytes": args.segment_bytes}
        if args.dedupe_buffer:
            config["log.cleaner.dedupe.buffer.size"] = args.dedupe_buffer
        log.create_topic("s", config=config)
        log.create_topic("empty", config=config)
        pad = b"." * 60
        width = len(str(args.keys))
        t0 = time.perf_counter()
        with log.producer("s") as p:
            for start in range(0, args.records, 10_000):
                idx = range(start, min(args.records, start + 10_000))
                keys = [b"u-%0*d" % (width, i % args.keys) for i in idx]
                p.send_keyed(keys, [b'{"user":"%s","n":%d,"pad":"%s"}' % (k, i, pad)
                                    for k, i in zip(keys, idx)])
            p.flush()
        t1 = time.perf_counter()
        part = log.topic("s").partition(0)
        sealed = part.segment_bases()[-1]  # records below the active segment are compacted
        print(f"produced {args.records:,} records over {args.keys:,} keys in {t1 - t0:.1f} s: "
              f"{part.size_bytes():,} bytes in {len(part.segment_bases())} segments "
              f"({sealed:,} records sealed)")
        base = run_sampled(FSLOG + ["--root", root, "clean", "empty", "--compact-now", "--quiet"]).peak
        dt, cpu, mem, out = run_sampled(FSLOG + ["--root", root, "clean", "s", "--compact-now", "--json"])
        buf = log.topic("s").config.get("log.cleaner.dedupe.buffer.size")
        import json
        doc = json.loads(out)
        c = doc["partitions"][0].get("compaction") or {}
        print(f"fslog clean --compact-now: {dt:.2f} s, {sealed / dt:,.0f} records/s "
              f"(sealed records over the wall time of the process, startup included); "
              f"CPU {cpu:.2f} s, {sealed / cpu:,.0f} records/s by CPU time; load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"peak RSS {mem['VmRSS']:.0f} MB (anonymous {mem['RssAnon']:.0f} MB, file-backed "
              f"{mem['RssFile']:.0f} MB; with its helper process {mem['TreeRSS']:.0f} MB) with a "
              f"{buf / 2**20:.0f} MiB dedupe buffer; the same "
              f"command on an empty topic: {base['VmRSS']:.0f} MB (anonymous "
              f"{base['RssAnon']:.0f} MB); anonymous growth {mem['RssAnon'] - base['RssAnon']:.0f} MB "
              f"for a {buf / 2**20:.0f} MiB buffer")
        print(f"{c.get('passes')} passes, {c.get('records_removed', 0):,} records removed; "
              f"{c.get('bytes_before', 0):,} -> {c.get('bytes_after', 0):,} bytes in "
              f"{c.get('segments_before')} -> {c.get('segments_after')} segments")
    finally:
        if os.environ.get("KEEP"):
            print(work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
