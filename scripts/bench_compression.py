"""Compression benchmark: the same JSON lines (``gen-sample-data --bench``, ~106 bytes each)
through ``fslog produce --compression C`` (stdin → durable log) and ``fslog consume``
(raw values, and ``--format json``) for every codec, beside the uncompressed run of the
same data in the same run: records/s, the ratio to uncompressed, and bytes on disk. Each
case is a whole CLI process, startup included; best of --repeat.

Usage: scripts/bench-compression [--records N] [--repeat K]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FSLOG = [sys.executable, "-m", "fslog.cli.main"]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def timed(cmd, stdin=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdin=stdin, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def log_bytes(root: str, topic: str) -> int:
    d = os.path.join(root, "topics", topic)
    return sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(d)
               for f in fs if f.endswith(".log"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "fslog")],
                   check=True)
    work = tempfile.mkdtemp(prefix="fslog-bench-compression.")
    n = args.records
    try:
        data = os.path.join(work, "data.jsonl")
        subprocess.run([sys.executable, os.path.join(HERE, "gen-sample-data"), "--bench", str(n),
                        data], check=True, stdout=sys.stderr)
        rows = {}
        for codec in CODECS:
            best_p = best_c = best_j = float("inf")
            for k in range(args.repeat):
                root = os.path.join(work, f"root-{codec}-{k}")
                with open(data, "rb") as f:
                    best_p = min(best_p, timed(FSLOG + ["--root", root, "produce", "t",
                                                        "--compression", codec], stdin=f))
                best_c = min(best_c, timed(FSLOG + ["--root", root, "consume", "t"]))
                best_j = min(best_j, timed(FSLOG + ["--root", root, "consume", "t",
                                                    "--format", "json"]))
                size = log_bytes(root, "t")
                if k:
                    shutil.rmtree(root, ignore_errors=True)
            rows[codec] = (n / best_p, n / best_c, n / best_j, size)
            print(f"  {codec:<7} produce {n / best_p:>10,.0f}  consume {n / best_c:>10,.0f}  "
                  f"consume --format json {n / best_j:>10,.0f} records/s  {size:>12,} bytes",
                  file=sys.stderr)
        base = rows["none"]
        print(f"\n{n:,} records of ~{os.path.getsize(data) / n:.0f} bytes, best of {args.repeat}\n")
        print("| codec | produce records/s | vs. none | consume records/s | vs. none "
              "| consume --format json | vs. none | log bytes | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for codec, (p, c, j, size) in rows.items():
            print(f"| {codec} | {p:,.0f} | {p / base[0]:.2f}x | {c:,.0f} | {c / base[1]:.2f}x "
                  f"| {j:,.0f} | {j / base[2]:.2f}x | {size:,} | {base[3] / size:.1f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
