"""Compaction benchmark: N keyed records over K keys into a compacted topic (through the
library), then one compaction of the sealed segments, timed; records/s, bytes before and
after, peak RSS. Usage: scripts/bench-compaction [--records N] [--keys K]"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time

import fslog
from fslog.storage import cleaner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--segment-bytes", type=int, default=8 << 20)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fslog-bench-compaction-")
    try:
        log = fslog.Log(work)
        log.create_topic("s", config={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": 1.0,
                                      "segment.bytes": args.segment_bytes})
        pad = b"." * 60
        t0 = time.perf_counter()
        with log.producer("s") as p:
            for i in range(args.records):
                key = b"u-%06d" % (i % args.keys)
                p.send(b'{"user":"%s","n":%d,"pad":"%s"}' % (key, i, pad), key=key)
        t1 = time.perf_counter()
        part = log.topic("s").partition(0)
        print(f"produced {args.records:,} records over {args.keys:,} keys in {t1 - t0:.2f} s: "
              f"{part.size_bytes():,} bytes in {len(part.segment_bases())} segments")
        res = cleaner.clean_partition(part, force_compaction=True)
        t2 = time.perf_counter()
        c = res["compaction"]
        print(f"compacted in {t2 - t1:.2f} s: {args.records / (t2 - t1):,.0f} records/s; "
              f"{c['records_removed']:,} records removed; {c['bytes_before']:,} -> "
              f"{c['bytes_after']:,} bytes; segments {c['segments_before']} -> {c['segments_after']}")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
