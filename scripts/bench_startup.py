"""Start-up cost of the ``fslog`` command: wall and CPU time (user + sys of the process) of
short commands, beside ``python -c pass`` and ``python -c 'import orjson'`` (what any
Python program that validates JSON with orjson pays before its first line), measured in
the same run. With ``--old DIR`` (another checkout of fslog, e.g. a ``git worktree`` of an
older commit) every case also runs from there, interleaved with this tree's, so the two
are compared under the same load.

Each start is its own process, ``python -m fslog.cli.main`` from the tree's root (as
scripts/bench runs fslog); the median of ``--starts`` starts is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PY = sys.executable


def start(cmd: list[str], cwd: str, stdin: bytes = b"") -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    assert p.stdin is not None and p.stderr is not None
    p.stdin.write(stdin)
    p.stdin.close()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err.decode(errors='replace')}")
    return dt, ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--starts", type=int, default=30, help="starts of each case (median kept)")
    ap.add_argument("--old", metavar="DIR", help="another fslog checkout to compare, same run")
    args = ap.parse_args()
    trees = [("new", REPO)] + ([("old", os.path.abspath(args.old))] if args.old else [])
    work = tempfile.mkdtemp(prefix="fslog-startup.")
    try:
        root = os.path.join(work, "root")
        fslog = [PY, "-m", "fslog.cli.main", "--root", root]
        subprocess.run(fslog + ["topic", "create", "t", "--partitions", "4"], cwd=REPO,
                       check=True, capture_output=True)
        subprocess.run(fslog + ["produce", "t"], cwd=REPO, input=b'{"user_id":"u-1"}\n',
                       check=True, capture_output=True)
        cases: list[tuple[str, list[str], bytes, bool]] = [
            ("python -c pass", [PY, "-c", "pass"], b"", False),
            ("python -c 'import orjson'", [PY, "-c", "import orjson"], b"", False),
            ("fslog produce t (one record)", fslog + ["produce", "t"], b"hello\n", True),
            ("fslog produce t --format json --key-field user_id (one record)",
             fslog + ["produce", "t", "--format", "json", "--key-field", "user_id"],
             b'{"user_id":"u-2"}\n', True),
            ("fslog consume t (one record)", fslog + ["consume", "t"], b"", True),
            ("fslog topic create (and delete)", fslog + ["topic", "create", "x"], b"", True),
            ("fslog topic list", fslog + ["topic", "list"], b"", True),
            ("fslog --help", fslog + ["--help"], b"", True),
        ]
        print(f"start-up, median of {args.starts} starts; load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)
        for name, cmd, stdin, is_fslog in cases:
            got: dict[str, list[tuple[float, float]]] = {t: [] for t, _ in trees}
            for _ in range(args.starts):
                for tree, path in (trees if is_fslog else trees[:1]):
                    got[tree].append(start(cmd, path, stdin))
                    if "create" in cmd:
                        subprocess.run(fslog + ["topic", "delete", "x"], cwd=REPO, check=True,
                                       capture_output=True)
            line = f"  {name:<62}"
            for tree, _ in (trees if is_fslog else trees[:1]):
                wall = statistics.median(w for w, _ in got[tree]) * 1000
                cpu = statistics.median(c for _, c in got[tree]) * 1000
                line += f"  {tree}: {wall:6.1f} ms wall, {cpu:6.1f} ms CPU"
            if is_fslog and len(trees) > 1:
                ratio = statistics.median(c for _, c in got["new"]) / \
                    statistics.median(c for _, c in got["old"])
                line += f"  (CPU new/old {ratio:.2f})"
            print(line, file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
