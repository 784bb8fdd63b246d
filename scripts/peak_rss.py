"""Peak memory of a benchmark's child process, for scripts/bench.py and
scripts/bench_compaction.py: ``run_sampled`` runs one command, reads its
/proc/PID/status every 10 ms, and reports the peaks of VmRSS (all resident memory),
RssAnon (the process's own: heap, Python objects) and RssFile (pages of mapped files such
as segments, which the kernel may drop at any time), with the wall and CPU seconds; and
TreeRSS, the peak of VmRSS summed over the process and its children (a compaction's
helper process: pages they share are counted twice)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from typing import NamedTuple

KEYS = ("VmRSS", "RssAnon", "RssFile")


def _status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in KEYS:
                out[k] = int(v.split()[0])
    return out


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Sampled(NamedTuple):
    seconds: float  # wall time, start-up included
    cpu: float  # user + system seconds of the process
    peak: dict  # MB: VmRSS, RssAnon, RssFile
    stdout: bytes


def run_sampled(cmd, env=None, stdin=None, interval: float = 0.01) -> Sampled:
    """Run ``cmd`` to its end, sampling its memory; a non-zero exit raises SystemExit with
    the command and its stderr. Its stdout is kept (through a file: a pipe could fill)."""
    peak = dict.fromkeys(KEYS + ("TreeRSS",), 0)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                             stdout=out, stderr=err, env=env)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            try:
                now = _status(p.pid)
                for k, v in now.items():
                    peak[k] = max(peak[k], v)
                tree, todo = now.get("VmRSS", 0), _children(p.pid)
                while todo:
                    c = todo.pop()
                    try:
                        tree += _status(c).get("VmRSS", 0)
                    except OSError:
                        continue
                    todo.extend(_children(c))
                peak["TreeRSS"] = max(peak["TreeRSS"], tree)
            except (OSError, ValueError):
                pass
            time.sleep(interval)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode:
            raise SystemExit(f"benchmark step failed ({p.returncode}): {' '.join(map(str, cmd))}\n"
                             f"{err.read().decode(errors='replace')}")
        return Sampled(dt, ru.ru_utime + ru.ru_stime,
                       {k: round(v / 1024, 1) for k, v in peak.items()}, out.read())
