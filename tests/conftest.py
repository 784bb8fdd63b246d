"""Shared fixtures.

CLI tests run the real ``fslog`` console script as a subprocess against a temporary
root (``FSLOG_ROOT`` in the child's environment, so nothing ever touches the user's
default root) and check exit codes, stdout and stderr exactly; state is then checked
through the library (``fslog.Log(root)``).

- ``fslog_root``: a fresh root directory path (not created yet).
- ``run_fslog(*args, input=b"", env=None, check=0, timeout=60)``: run ``fslog`` and
  return the ``CompletedProcess`` (bytes stdout/stderr). ``check`` is the expected exit
  code (``None``: anything). "Traceback" on stderr always fails the test.
- ``fslog_popen(*args, **popen_kwargs)``: start ``fslog`` in the background; every
  process started this way is killed at teardown if still running.
- ``cli``: the object behind both, with helpers (``log()``, ``records()``, ``values()``,
  ``append()``: set-up through the library when ``fslog produce`` is not what is tested).

``tmp_path`` and the roots in it are in memory (``/dev/shm``) when there is room there
(``FSLOG_TEST_ON_DISK=1``: on disk, as without room). Hypothesis runs without its
deadline and too-slow health check (the ``fslog`` profile): they fail on a busy machine.
The suite starts ``fslog`` thousands of times: ``pytest_configure`` byte-compiles the
package once (``PYTHONDONTWRITEBYTECODE`` in the environment would otherwise make every
child process compile every module it imports, ~0.1 s of CPU each), and the slowest
tests (``@pytest.mark.slow``) run first so that pytest-xdist does not end on one of
them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

# Hypothesis's deadline (200 ms an example) and its too-slow health check are timing
# asserts: a busy machine fails them (seen at load 10). No test here depends on speed.
hypothesis_settings.register_profile("fslog", deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("fslog")


def _fslog_command() -> list[str]:
    beside = os.path.join(os.path.dirname(sys.executable), "fslog")
    if os.access(beside, os.X_OK):
        return [beside]
    found = shutil.which("fslog")
    if found:
        return [found]
    return [sys.executable, "-m", "fslog.cli.main"]


FSLOG_CMD = _fslog_command()


# Roots made by the tests live in memory when the machine has room for them there: every
# fsync of a topic creation, an append or a commit then returns at once instead of waiting
# for a shared disk (on a busy machine most of the suite's wall time was such waits). The
# tests do the same fsync calls either way, and kill -9 (all they crash with) keeps what
# the page cache holds on either file system.
MEMORY_FS = "/dev/shm"
MEMORY_FS_ROOM = 4 << 30  # free bytes it needs (the suite keeps well under 1 GiB there)


def _memory_basetemp() -> str | None:
    if os.environ.get("FSLOG_TEST_ON_DISK"):
        return None
    try:
        if shutil.disk_usage(MEMORY_FS).free < MEMORY_FS_ROOM or not os.access(MEMORY_FS, os.W_OK):
            return None
        import tempfile
        return tempfile.mkdtemp(prefix="fslog-tests-", dir=MEMORY_FS)
    except OSError:
        return None


@pytest.hookimpl(tryfirst=True)  # before pytest's tmp_path factory reads --basetemp
def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "slow: takes tens of seconds; runs first (see the module docstring)")
    if hasattr(config, "workerinput"):  # an xdist worker: the controller compiled already
        return  # (and chose the base directory: each worker gets its own below it)
    if config.option.basetemp is None:
        config.option.basetemp = config._fslog_memory_basetemp = _memory_basetemp()
    import compileall

    import fslog
    try:
        compileall.compile_dir(os.path.dirname(fslog.__file__), quiet=1)
    except OSError:  # a read-only install: children compile in memory, only slower
        pass


def pytest_unconfigure(config) -> None:
    """The in-memory base directory goes at the end (pytest keeps a given --basetemp)."""
    made = getattr(config, "_fslog_memory_basetemp", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``slow`` first (stable order otherwise): xdist then starts them at
    once on different workers instead of finishing the run on one of them."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def fslog_env(root, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.pop("FSLOG_DEFAULT_PARTITIONS", None)
    env["FSLOG_ROOT"] = str(root)
    # belt and braces: even without FSLOG_ROOT, never fall back to the real default root
    env["XDG_DATA_HOME"] = str(Path(root).parent / "xdg-data")
    env.setdefault("LC_ALL", "C.UTF-8")
    env.pop("COLUMNS", None)
    if extra:
        env.update(extra)
    return env


def no_traceback(cp) -> None:
    err = cp.stderr if isinstance(cp.stderr, bytes) else (cp.stderr or "").encode()
    assert b"Traceback" not in err, f"traceback on stderr of {cp.args}:\n{err.decode(errors='replace')}"


_CRASH_AT = """
import os, signal, sys
what, n, fraction = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
name = "write" if what == "big-write" else what
real = getattr(os, name)
calls = 0
def crash(*args, **kwargs):
    global calls
    if what == "big-write" and len(args[1]) < 1 << 20:
        return real(*args, **kwargs)
    calls += 1
    if calls == n:
        if what == "big-write":
            real(args[0], memoryview(args[1])[:int(len(args[1]) * fraction)])
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(os, name, crash)
sys.argv = ["fslog"] + sys.argv[4:]
from fslog.cli.main import run
run()
"""


class CLI:
    def __init__(self, root: Path):
        self.root = root
        self.procs: list[subprocess.Popen] = []

    def env(self, extra: dict | None = None) -> dict:
        return fslog_env(self.root, extra)

    def run(self, *args, input: bytes | None = b"", env: dict | None = None, check: int | None = 0,
            timeout: float = 60) -> subprocess.CompletedProcess:
        cp = subprocess.run(FSLOG_CMD + [os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in args],
                            input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=self.env(env), timeout=timeout)
        no_traceback(cp)
        if check is not None:
            assert cp.returncode == check, (
                f"fslog {' '.join(map(str, args))}: exit {cp.returncode}, expected {check}\n"
                f"stderr: {cp.stderr.decode(errors='replace')}")
        return cp

    __call__ = run

    def run_many(self, cases, check: int | None = 0, workers: int = 4) -> list:
        """Run several independent invocations concurrently (they are mostly process
        start-up time); ``cases`` holds argument lists, or (args, input) pairs. Returns
        the CompletedProcess list in order; every one is checked like ``run``."""
        from concurrent.futures import ThreadPoolExecutor
        norm = [(c[0], c[1]) if isinstance(c, tuple) else (c, b"") for c in cases]
        with ThreadPoolExecutor(workers) as ex:
            futs = [ex.submit(self.run, *args, input=inp, check=check) for args, inp in norm]
            return [f.result() for f in futs]

    def popen(self, *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, env: dict | None = None, **kw) -> subprocess.Popen:
        p = subprocess.Popen(FSLOG_CMD + [str(a) for a in args], stdin=stdin, stdout=stdout,
                             stderr=stderr, env=self.env(env), **kw)
        self.procs.append(p)
        return p

    def popen_crashing(self, what: str, n: int, *args, fraction: float = 0.0, **kw) -> subprocess.Popen:
        """``popen`` of ``fslog ARGS`` in a process that kills itself with SIGKILL (as
        kill -9: no cleanup, nothing buffered is flushed) at the ``n``-th call of
        ``os.WHAT``, before it runs; with ``what="big-write"``, inside the ``n``-th
        ``os.write`` of 1 MiB or more, after writing ``fraction`` of it (a torn write).
        A crash at a chosen point: the same on a fast or a busy machine."""
        cmd = [sys.executable, "-c", _CRASH_AT, what, str(n), repr(fraction), *map(str, args)]
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen(cmd, env=self.env(kw.pop("env", None)), **kw)
        self.procs.append(p)
        return p

    def create(self, name: str, *args) -> None:
        self.run("topic", "create", name, *args)

    def produce(self, topic: str, data: bytes, *args) -> subprocess.CompletedProcess:
        cp = self.run("produce", topic, *args, input=data)
        assert cp.stdout == b""
        return cp

    # -- state through the library
    def append(self, topic: str, *values: bytes) -> None:
        """Set-up for a test that is not about ``fslog produce``: ``values`` appended to
        ``topic`` (created with one partition and defaults if missing) through the library,
        as one ``fslog produce`` of those lines would (one producer, flushed and closed);
        no process start."""
        log = self.log()
        log.create_topic(topic, if_not_exists=True)
        with log.producer(topic) as p:
            p.send_values(list(values))

    def log(self):
        import fslog
        return fslog.Log(str(self.root))

    def records(self, topic: str, **kw) -> list:
        r = self.log().reader(topic, **kw)
        try:
            return list(r)
        finally:
            r.close()

    def values(self, topic: str, partition: int | None = None) -> list:
        kw = {} if partition is None else {"partitions": [partition]}
        return [r.value for r in self.records(topic, **kw)]

    def partition_dir(self, topic: str, partition: int = 0) -> Path:
        return self.root / "topics" / topic / f"{topic}-{partition}"

    def segments(self, topic: str, partition: int = 0) -> list[Path]:
        return sorted(self.partition_dir(topic, partition).glob("*.log"))

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            for f in (p.stdin, p.stdout, p.stderr):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass


@pytest.fixture
def fslog_root(tmp_path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def cli(fslog_root):
    c = CLI(fslog_root)
    yield c
    c.cleanup()


@pytest.fixture
def run_fslog(cli):
    return cli.run


@pytest.fixture
def fslog_popen(cli):
    return cli.popen


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.01, what: str = "condition"):
    """Poll ``predicate`` until it returns a true value; return that value. ``timeout``
    only guards against a hang: never make it short enough for a busy machine to reach."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read_lines_until(p: subprocess.Popen, done, timeout: float = 120.0) -> list[bytes]:
    """Lines of ``p``'s stdout as they come, until ``done(lines so far)`` is true; fails
    if ``p`` ends first or ``timeout`` (a guard against hangs) passes."""
    import select
    deadline = time.monotonic() + timeout
    fd = p.stdout.fileno()
    waiting = select.poll()  # (not select(): a worker may hold descriptors past 1023)
    waiting.register(fd, select.POLLIN)
    buf = b""
    lines: list[bytes] = []
    while not done(lines):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout}s; {len(lines)} lines so far")
        if waiting.poll(min(left, 1.0) * 1000):
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise AssertionError(f"the process ended (exit {p.wait()}) after {len(lines)} "
                                     f"lines: {p.stderr.read() if p.stderr else b''!r}")
            buf += chunk
            *full, buf = buf.split(b"\n")
            lines.extend(full)
    assert buf == b"", "a partial line after the last expected one"
    return lines


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (relative), for before/after comparisons."""
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def stderr_lines(cp) -> list[str]:
    return cp.stderr.decode("utf-8", "replace").splitlines()


__all__ = ["FSLOG_CMD", "fslog_env", "no_traceback", "wait_for", "read_lines_until", "tree",
           "stderr_lines"]
