"""Hostile conditions: full disks and file-size limits, hostile names and paths (symbolic
links out of the root), hostile input, umasks, and damaged index files.

The standards every test here holds fslog to:

- bad input or a failing disk gets a one-line error on stderr and a non-zero exit, never
  a Python traceback (the ``cli`` fixture fails any test whose stderr has "Traceback");
- nothing already acknowledged is lost or corrupted: the log stays valid (``fslog verify``
  exits 0, possibly after the next writer cut a torn tail) and offsets stay dense;
- nothing outside the root is read or written: directories outside the root that a
  symbolic link points at are compared before and after (contents, sizes, mtimes).

Every fslog run is a real subprocess against a temporary root.
"""

from __future__ import annotations

import base64
import json
import os
import random
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLI, FSLOG_CMD, no_traceback, stderr_lines, wait_for


# ------------------------------------------------------------------ helpers
def run_with(cli: CLI, args, input: bytes = b"", preexec=None, cmd=None, env=None,
             check: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run fslog (or ``cmd``) like ``cli.run``, with a ``preexec_fn`` in the child."""
    cp = subprocess.run((cmd or FSLOG_CMD) + [os.fsdecode(a) if isinstance(a, bytes) else str(a)
                                              for a in args],
                        input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        env=env or cli.env(), preexec_fn=preexec, timeout=timeout)
    no_traceback(cp)
    if check is not None:
        assert cp.returncode == check, (args, cp.returncode, cp.stderr)
    return cp


def fsize_limit(limit: int, xfsz=signal.SIG_IGN):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, xfsz)
    return pre


def umask_of(mask: int):
    def pre():
        os.umask(mask)
    return pre


def snapshot(path) -> dict:
    """Everything about a tree that a write would change: per entry (not following links)
    its type, mode, size, mtime and, for files, the content."""
    path = str(path)
    out = {}

    def note(p):
        st = os.lstat(p)
        content = None
        if stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                content = f.read()
        elif stat.S_ISLNK(st.st_mode):
            content = os.readlink(p)
        out[os.path.relpath(p, path)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                         st.st_size, st.st_mtime_ns, content)

    note(path)
    for dp, dns, fns in os.walk(path):
        for n in dns + fns:
            note(os.path.join(dp, n))
    return out


def one_error_line(cp) -> str:
    lines = stderr_lines(cp)
    assert len(lines) == 1, lines
    assert lines[0].startswith("fslog: "), lines
    return lines[0]


def lines_of(n: int, fmt: bytes = b"line-%06d", start: int = 0) -> list[bytes]:
    return [fmt % i for i in range(start, start + n)]


def check_dense_prefix(cli: CLI, topic: str, acked: list[bytes], tail_candidates: list[bytes],
                       last: list[bytes]) -> None:
    """The topic holds ``acked``, then some prefix of ``tail_candidates``, then ``last``;
    offsets 0..n-1 with no gap."""
    recs = cli.records(topic)
    assert [r.offset for r in recs] == list(range(len(recs)))
    values = [r.value for r in recs]
    assert values[:len(acked)] == acked
    assert values[len(values) - len(last):] == last
    middle = values[len(acked):len(values) - len(last)]
    assert middle == tail_candidates[:len(middle)]


# ================================================================== 1. disk full, file-size limits
BIG_INPUT = lines_of(20000, b"payload-%06d-" + b"p" * 90)


def test_file_size_limit_mid_append(cli):
    """RLIMIT_FSIZE hit in the middle of a batch write (SIGXFSZ ignored: write() fails
    with EFBIG after a short write): one line, exit 1, nothing acknowledged lost; the
    failed writer takes its partial batch back out, so the log verifies at once."""
    acked = lines_of(100, b"acked-%04d")
    cli.produce("orders", b"\n".join(acked) + b"\n")
    seg = cli.segments("orders")[0]
    limit = seg.stat().st_size + 300_000
    cp = run_with(cli, ["produce", "orders"], b"\n".join(BIG_INPUT) + b"\n",
                  preexec=fsize_limit(limit))
    assert cp.returncode == 1
    one_error_line(cp)
    assert cp.stdout == b""
    assert seg.stat().st_size <= limit
    # readers: the acknowledged records, then whole records of the failed run, in order
    check_dense_prefix(cli, "orders", acked, BIG_INPUT, [])
    cli("verify")
    # the next writer, without the limit, continues densely
    cp = cli.produce("orders", b"after-1\nafter-2\n")
    assert b"truncated" not in cp.stderr
    cli("verify")
    check_dense_prefix(cli, "orders", acked, BIG_INPUT, [b"after-1", b"after-2"])


_SIGXFSZ_DEFAULT = ("import signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); "
                    "sys.argv[0] = 'fslog'; from fslog.cli.main import run; run()")


@pytest.mark.parametrize("how", ["killed-by-kernel", "fslog-as-installed"])
def test_file_size_limit_default_sigxfsz(cli, how):
    """SIGXFSZ at its default disposition. CPython ignores SIGXFSZ at start-up, so the
    installed ``fslog`` gets EFBIG (exit 1); run through an interpreter that restores the
    default, the kernel kills the process mid-write. Either way the log stays valid."""
    acked = lines_of(50, b"acked-%04d")
    cli.produce("t", b"\n".join(acked) + b"\n")
    limit = cli.segments("t")[0].stat().st_size + 200_000
    cmd = [sys.executable, "-c", _SIGXFSZ_DEFAULT] if how == "killed-by-kernel" else None
    cp = run_with(cli, ["produce", "t"], b"\n".join(BIG_INPUT) + b"\n",
                  preexec=fsize_limit(limit, signal.SIG_DFL), cmd=cmd)
    if how == "killed-by-kernel":
        assert cp.returncode == -signal.SIGXFSZ, (cp.returncode, cp.stderr)
    else:
        assert cp.returncode == 1
        one_error_line(cp)
    check_dense_prefix(cli, "t", acked, BIG_INPUT, [])
    cli("verify", "--repair")
    cli("verify")
    cli.produce("t", b"after\n")
    check_dense_prefix(cli, "t", acked, BIG_INPUT, [b"after"])


def test_file_size_limit_zero_at_topic_creation(cli, fslog_root):
    """No file can be written at all: the topic is not half-created."""
    cp = run_with(cli, ["produce", "t"], b"a\n", preexec=fsize_limit(0))
    assert cp.returncode == 1
    one_error_line(cp)
    assert list((fslog_root / "topics").iterdir()) == []
    assert list((fslog_root / "tmp").iterdir()) == []
    cli.produce("t", b"a\n")
    assert cli.values("t") == [b"a"]


def test_file_size_limit_error_names_where(cli):
    cli.produce("orders", b"a\n")
    limit = cli.segments("orders")[0].stat().st_size + 100_000
    cp = run_with(cli, ["produce", "orders"], b"\n".join(BIG_INPUT) + b"\n",
                  preexec=fsize_limit(limit))
    msg = one_error_line(cp)
    assert "orders" in msg, msg


def test_failed_group_join_leaves_no_litter(cli, fslog_root):
    cli.append("t", b"a")
    cp = run_with(cli, ["consume", "t", "--group", "g"], preexec=fsize_limit(0))
    assert cp.returncode == 1
    one_error_line(cp)
    assert cli("consume", "t", "--group", "g").stdout == b"a\n"
    gdir = fslog_root / "groups" / "g"
    litter = [p.name for p in gdir.rglob("*.tmp.*")] + [p.name for p in (gdir / "members").iterdir()]
    assert litter == []


@pytest.fixture
def small_fs(tmp_path, request):
    """A 1 MiB tmpfs (root only): a file system that really fills up."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                           capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs: {e}")
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode(errors='replace').strip()}")

    def unmount():
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    request.addfinalizer(unmount)
    return mnt


def fill(path: Path, leave: int = 0) -> None:
    """Write a file until the file system has only about ``leave`` bytes free."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        chunk = b"\0" * 4096
        while True:
            st = os.statvfs(path)
            if st.f_bavail * st.f_frsize <= leave:
                return
            try:
                os.write(fd, chunk)
            except OSError:
                return
    finally:
        os.close(fd)


def test_disk_really_full(small_fs):
    cli = CLI(small_fs / "root")
    try:
        acked = lines_of(200, b"acked-%04d")
        cli.produce("t", b"\n".join(acked) + b"\n")
        cli("consume", "t", "--group", "g")  # a group with a committed offset
        registry = (cli.root / "groups" / "g" / "registry.json").read_bytes()
        filler = small_fs / "filler"
        fill(filler, leave=200_000)
        cp = cli("produce", "t", input=b"\n".join(BIG_INPUT) + b"\n", check=1)
        one_error_line(cp)
        check_dense_prefix(cli, "t", acked, BIG_INPUT, [])
        # while the disk is full: a group member cannot commit: a clear failure, and the
        # group's registry and committed offset are intact
        fill(small_fs / "filler2")
        cp = cli("consume", "t", "--group", "g", check=None)
        assert cp.returncode == 1
        one_error_line(cp)
        assert (cli.root / "groups" / "g" / "registry.json").read_bytes() == registry
        assert cli.log().topic("t")  # topic.json intact
        # space again: the next writer cuts any torn tail and continues densely
        filler.unlink()
        (small_fs / "filler2").unlink()
        cli.produce("t", b"after\n")
        cli("verify")
        check_dense_prefix(cli, "t", acked, BIG_INPUT, [b"after"])
    finally:
        cli.cleanup()


# ================================================================== 2. hostile names and paths
BAD_GROUP_NAMES = ["a/b", "..", "../../escape", "g" * 10000, ""]


def test_hostile_group_names(cli, fslog_root):
    cli.append("t", b"a")
    before = snapshot(fslog_root.parent)
    cases = []
    for g in BAD_GROUP_NAMES:
        cases += [["consume", "t", "--group", g], ["group", "describe", "--", g],
                  ["group", "delete", "--", g],
                  ["group", "reset", "--topic", "t", "--to-earliest", "--execute", "--", g]]
    for c, cp in zip(cases, cli.run_many(cases, check=1)):
        msg = one_error_line(cp)
        assert msg.startswith("fslog: group name"), (c[:3], msg)
        assert len(msg) < 300, c[:3]  # the 10,000-character name is not echoed back
        assert cp.stdout == b""
    assert snapshot(fslog_root.parent) == before


def test_absurdly_long_topic_name(cli, fslog_root):
    cli("topic", "list")
    before = snapshot(fslog_root.parent)
    name = "t" * 10000
    cases = [(["produce", "--", name], b"x\n"), (["consume", "--", name], b""),
             (["topic", "create", "--", name], b""), (["topic", "delete", "--", name], b""),
             (["verify", "--", name], b"")]
    for (c, _), cp in zip(cases, cli.run_many(cases, check=1)):
        msg = one_error_line(cp)
        assert msg == "fslog: topic name is 10000 characters long: the limit is 249", (c[0], msg)
    assert snapshot(fslog_root.parent) == before


def test_names_starting_with_dash(cli):
    # without "--" the name is taken for an option: a usage error, nothing created
    cp = cli("topic", "create", "-x", check=2)
    assert b"No such option" in cp.stderr
    assert cli.log().topics() == []
    # after "--" it is an ordinary (valid, Kafka-legal) name
    cli("topic", "create", "--", "-x")
    cli("produce", "--", "-x", input=b"v1\nv2\n")
    assert cli("consume", "--", "-x").stdout == b"v1\nv2\n"
    assert cli("consume", "--group", "-g", "--", "-x").stdout == b"v1\nv2\n"
    assert json.loads(cli("group", "describe", "--json", "--", "-g").stdout)["partitions"][0]["committed"] == 2
    assert json.loads(cli("topic", "describe", "--json", "--", "-x").stdout)["name"] == "-x"
    cli("group", "delete", "--", "-g")
    cli("topic", "delete", "--", "-x")
    assert cli.log().topics() == []


def test_root_is_a_file_for_produce_and_consume(cli, tmp_path):
    f = tmp_path / "afile"
    f.write_bytes(b"precious\n")
    before = snapshot(tmp_path)
    cases = [(["--root", str(f), "produce", "t"], b"x\n"), (["--root", str(f), "consume", "t"], b""),
             (["--root", str(f / "sub"), "produce", "t"], b"x\n"),
             (["--root", str(f / "sub"), "topic", "list"], b"")]
    for (c, _), cp in zip(cases, cli.run_many(cases, check=1)):
        msg = one_error_line(cp)
        assert str(f) in msg, (c, msg)
    assert snapshot(tmp_path) == before


def test_empty_root_option_refused(cli, tmp_path):
    env = cli.env()
    env.pop("FSLOG_ROOT")
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    cp = run_with(cli, ["--root", "", "produce", "t"], b"x\n", env=env)
    assert not (tmp_path / "xdg" / "fslog").exists()
    assert cp.returncode != 0
    assert "--root" in one_error_line(cp)


@pytest.fixture
def outside(tmp_path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "victim").write_bytes(b"precious, not fslog's\n")
    return d


def assert_refused(cp, *words) -> str:
    assert cp.returncode == 1, (cp.args[1:], cp.returncode, cp.stderr)
    msg = one_error_line(cp)
    for w in words:
        assert w in msg, (cp.args[1:], msg)
    # commands that list many things show the rest and report the one refused
    assert cp.stdout == b"" or cp.args[1:3] in (["topic", "list"], ["group", "list"], ["status"])
    return msg


def test_topic_dir_symlinked_outside(cli, outside):
    cli.append("t", b"a", b"b")
    real = outside / "t"
    shutil.move(str(cli.root / "topics" / "t"), str(real))
    os.symlink(real, cli.root / "topics" / "t")
    before = snapshot(outside)
    cases = [(["produce", "t"], b"x\n"), (["consume", "t"], b""), (["topic", "describe", "t"], b""),
             (["verify", "t", "--repair"], b""), (["consume", "t", "--group", "g"], b"")]
    for (_c, _), cp in zip(cases, cli.run_many(cases, check=None)):
        assert_refused(cp, "symbolic link", str(cli.root / "topics" / "t"))
    cp = cli("topic", "create", "t", check=1)
    assert snapshot(outside) == before
    # delete: refused, or the link alone removed; never what it points at
    cli("topic", "delete", "t", check=None)
    assert snapshot(outside) == before
    assert (real / "t-0").is_dir()


def test_partition_dir_symlinked_outside(cli, outside):
    cli.append("t", b"a", b"b")
    pdir = cli.partition_dir("t")
    shutil.move(str(pdir), str(outside / "t-0"))
    os.symlink(outside / "t-0", pdir)
    before = snapshot(outside)
    try:
        cases = [(["produce", "t"], b"x\n"), (["consume", "t"], b""),
                 (["topic", "describe", "t"], b""), (["verify", "t", "--repair"], b"")]
        for (_c, _), cp in zip(cases, cli.run_many(cases, check=None, workers=1)):
            assert_refused(cp, "symbolic link")
    finally:
        assert snapshot(outside) == before


def test_partition_lock_symlinked_outside(cli, outside):
    cli.append("t", b"a")
    lock = cli.partition_dir("t") / ".lock"
    lock.unlink()
    os.symlink(outside / "victim", lock)
    before = snapshot(outside)
    for cp in cli.run_many([(["produce", "t"], b"x\n"), (["verify", "t", "--repair"], b"")], check=None):
        assert_refused(cp, "symbolic link", str(lock))
    assert cli("consume", "t").stdout == b"a\n"  # readers take no lock
    assert snapshot(outside) == before


@pytest.mark.parametrize("suffix", [".log", ".index", ".timeindex"])
def test_segment_files_symlinked_outside(cli, outside, suffix):
    cli.append("t", b"a")
    f = cli.segments("t")[0].with_suffix(suffix)
    shutil.move(str(f), str(outside / f.name))
    os.symlink(outside / f.name, f)
    before = snapshot(outside)
    cp = cli("produce", "t", input=b"x\n", check=None)
    assert_refused(cp, str(f))
    for cp in cli.run_many([["consume", "t"], ["verify", "--repair"], ["topic", "describe", "t"]],
                           check=None):
        assert cp.returncode in (0, 1)
        if cp.returncode:
            assert_refused(cp, str(f))
    assert snapshot(outside) == before


def test_topic_config_symlinked_outside(cli, outside):
    cli.append("t", b"a")
    cfg = cli.root / "topics" / "t" / "topic.json"
    (outside / "topic.json").write_text('{"partitions": 1, "config": {"max.message.bytes": 100}}')
    cfg.unlink()
    os.symlink(outside / "topic.json", cfg)
    cp = cli("produce", "t", input=b"x\n", check=None)
    assert_refused(cp, "symbolic link", str(cfg))


def test_topics_dir_symlinked_outside(cli, outside):
    cli.append("t", b"a")
    shutil.move(str(cli.root / "topics"), str(outside / "topics"))
    os.symlink(outside / "topics", cli.root / "topics")
    before = snapshot(outside)
    cases = [(["produce", "t"], b"x\n"), (["produce", "new"], b"x\n"), (["consume", "t"], b""),
             (["topic", "list"], b""), (["topic", "create", "u"], b""), (["topic", "delete", "t"], b""),
             (["verify", "--repair"], b""), (["status"], b"")]
    for cp in cli.run_many(cases, check=None):
        assert_refused(cp, "symbolic link", str(cli.root / "topics"))
    assert snapshot(outside) == before


@pytest.fixture
def group_g(cli):
    cli.append("t", b"a", b"b")
    assert cli("consume", "t", "--group", "g").stdout == b"a\nb\n"
    cli.append("t", b"c")
    return cli.root / "groups" / "g"


GROUP_COMMANDS = [["consume", "t", "--group", "g"], ["group", "describe", "g"], ["group", "list"],
                  ["status"], ["group", "reset", "g", "--topic", "t", "--to-earliest", "--execute"],
                  ["group", "delete", "g"]]


@pytest.mark.parametrize("name", ["registry.00000000000000000002.json", "registry.json",
                                  "owners/t-0.lock", "offsets/t/0"])
def test_group_file_symlinked_outside(cli, outside, group_g, name):
    f = group_g / name
    f.unlink()
    os.symlink(outside / "victim", f)
    before = snapshot(outside)
    for c in GROUP_COMMANDS:  # in order: delete last
        cp = cli(*c, check=None)
        assert cp.returncode in (0, 1), (c, cp.returncode)
        if cp.returncode:
            one_error_line(cp)
        assert snapshot(outside) == before, c


@pytest.mark.parametrize("name", ["g", ""], ids=["group-dir", "groups-dir"])
def test_group_dir_symlinked_outside(cli, outside, group_g, name):
    d = group_g if name == "g" else group_g.parent
    shutil.move(str(d), str(outside / "moved"))
    os.symlink(outside / "moved", d)
    before = snapshot(outside)
    for _c, cp in zip(GROUP_COMMANDS, cli.run_many(GROUP_COMMANDS, check=None)):
        assert_refused(cp)
    assert snapshot(outside) == before


@pytest.mark.parametrize("name", ["members", "owners", "offsets/t"])
def test_group_subdir_symlinked_outside(cli, outside, group_g, name):
    d = group_g / name
    shutil.move(str(d), str(outside / "moved"))
    os.symlink(outside / "moved", d)
    before = snapshot(outside)
    cli("consume", "t", "--group", "g", check=None)
    assert snapshot(outside) == before


@pytest.mark.parametrize("name", ["groups", "groups/g", "groups/g/offsets"])
def test_group_dirs_symlinked_outside_before_first_use(cli, outside, name):
    """A link where a group's directories would be created: refused before anything is
    created through it (found creating outside/g/members, owners, offsets first)."""
    cli.append("t", b"a")
    link = cli.root / name
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, link)
    before = snapshot(outside)
    cmds = [["consume", "t", "--group", "g"], ["consume", "t", "--group", "g", "--follow"]]
    for cp in cli.run_many(cmds, check=None):
        assert_refused(cp, f"{link} is a symbolic link", "remove it")
        assert snapshot(outside) == before, cp.args
    for c in GROUP_COMMANDS[1:]:
        assert_refused(cli(*c, check=None), str(link), "symbolic link")
        assert snapshot(outside) == before, c


def test_tmp_dir_symlinked_outside(cli, outside):
    """ROOT/tmp stages topic creation and deletion and group deletion: a link there is
    refused before anything is staged or deleted through it (found staging outside, or
    failing with 'Invalid cross-device link')."""
    cli.append("t", b"a")
    cli("consume", "t", "--group", "g")
    (cli.root / "tmp").rmdir()
    os.symlink(outside, cli.root / "tmp")
    before = snapshot(outside)
    cases = [(["topic", "create", "u"], b""), (["produce", "new"], b"x\n"),
             (["topic", "delete", "t"], b""), (["group", "delete", "g"], b""),
             (["consume", "t"], b""), (["status"], b"")]
    for cp in cli.run_many(cases, check=None):
        assert_refused(cp, f"{cli.root / 'tmp'} is a symbolic link", "remove it")
    assert snapshot(outside) == before
    assert (cli.root / "topics" / "t").is_dir() and (cli.root / "groups" / "g").is_dir()
    # once the link is gone, everything works again
    (cli.root / "tmp").unlink()
    cli("topic", "create", "u")
    cli("group", "delete", "g")
    cli("topic", "delete", "t")
    assert snapshot(outside) == before


# ================================================================== 3. hostile input
# Linux charges a child's ru_maxrss with the resident size of the process it was forked
# from (the high-water mark of the old image is kept across exec), so a child of a
# large pytest process would report pytest's size. A small interpreter in between starts
# fslog and reports fslog's own peak.
_RSS_SHIM = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, ru = os.wait4(pid, 0)\n"
    "with open(sys.argv[1], 'w') as f:\n"
    "    f.write(str(ru.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def _produce_streaming(cli: CLI, args, chunks, out_dir: Path):
    """Stream ``chunks`` into ``fslog produce``; return (exit code, stdout, stderr, peak RSS
    in MB of the child, bytes the child accepted before closing its stdin)."""
    rss_file = out_dir / "maxrss"
    with open(out_dir / "stdout", "w+b") as so, open(out_dir / "stderr", "w+b") as se:
        p = subprocess.Popen([sys.executable, "-c", _RSS_SHIM, str(rss_file)] + FSLOG_CMD + list(args),
                             stdin=subprocess.PIPE, stdout=so, stderr=se, env=cli.env())
        sent = 0
        try:
            for c in chunks:
                p.stdin.write(c)
                sent += len(c)
            p.stdin.close()
        except BrokenPipeError:
            pass
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
        p.wait()
        so.seek(0)
        se.seek(0)
        return p.returncode, so.read(), se.read(), int(rss_file.read_text()) / 1024, sent


HUNDRED_MB = [b"z" * (1 << 20)] * 100


def test_100mb_line_refused_with_bounded_memory(cli, tmp_path):
    cli.produce("t", b"before\n")
    rc, out, err, rss, sent = _produce_streaming(cli, ["produce", "t"], HUNDRED_MB, tmp_path)
    assert b"Traceback" not in err
    assert rc == 1
    lines = err.decode().splitlines()
    assert len(lines) == 1 and "line 1" in lines[0] and "max.message.bytes" in lines[0], lines
    assert rss < 150, f"peak RSS {rss:.0f} MB"
    assert cli.values("t") == [b"before"]


def test_100mb_line_skipped_then_good_lines_written(cli, tmp_path):
    chunks = [b"ok-1\n"] + HUNDRED_MB + [b"\ngood-1\ngood-2\n"]
    rc, out, err, rss, sent = _produce_streaming(
        cli, ["produce", "t", "--skip-invalid", "--json"], chunks, tmp_path)
    assert b"Traceback" not in err
    assert rc == 0, err
    assert json.loads(out)["skipped_lines"] == [2]
    assert "skipped line 2" in err.decode()
    assert rss < 150, f"peak RSS {rss:.0f} MB"
    assert cli.values("t") == [b"ok-1", b"good-1", b"good-2"]


def test_every_byte_value_round_trips(cli):
    values = [bytes([b]) for b in range(256) if b != 0x0A]
    values += [bytes(b for b in range(256) if b != 0x0A), b"\x00\x00", b"\xff" * 1000, b"crlf\r",
               b"\r", b"\r\r"]
    data = b"\n".join(values) + b"\n"
    cli.produce("t", data)
    assert cli.values("t") == values
    assert cli("consume", "t").stdout == data
    for r, line in zip(values, cli("consume", "t", "--format", "json").stdout.splitlines()):
        doc = json.loads(line)
        got = base64.b64decode(doc["value"]) if doc.get("value_encoding") == "base64" \
            else doc["value"].encode("utf-8")
        assert got == r


def test_empty_stdin_creates_missing_topic_and_says_so(cli):
    cp = cli("produce", "fresh", "--json", input=b"")
    assert stderr_lines(cp) == ["fslog: created topic 'fresh' with 1 partition"]
    assert json.loads(cp.stdout)["records"] == 0
    assert cli.log().topics() == ["fresh"]
    assert cli.values("fresh") == []
    cli("verify")


def test_json_crlf_lines_keep_the_carriage_return(cli):
    cli("produce", "t", "--format", "json", "--key-field", "id",
        input=b'{"id":"a","v":1}\r\n{"id":2}\r\n')
    recs = cli.records("t")
    assert [(r.key, r.value) for r in recs] == [(b"a", b'{"id":"a","v":1}\r'), (b"2", b'{"id":2}\r')]


def test_json_key_field_wrong_shapes_named_by_line(cli):
    data = b"\n".join([
        b'{"id":"ok"}',          # 1 good
        b'42',                   # 2 a number, not an object
        b'"just a string"',      # 3
        b'true',                 # 4
        b'{"id": true}',         # 5 key field a bool
        b'{"id": []}',           # 6 key field an array
        b'{"other": 1}',         # 7 key field missing
        b'{"id": 7}',            # 8 good: a number key
    ]) + b"\n"
    cli.create("t")
    cli.create("u")
    cp = cli("produce", "t", "--format", "json", "--key-field", "id", "--skip-invalid", "--json",
             input=data)
    assert json.loads(cp.stdout)["skipped_lines"] == [2, 3, 4, 5, 6, 7]
    msgs = stderr_lines(cp)
    assert len(msgs) == 6
    for n, m in zip([2, 3, 4, 5, 6, 7], msgs):
        assert m.startswith(f"fslog: skipped line {n}: --key-field id"), m
    assert [r.key for r in cli.records("t")] == [b"ok", b"7"]
    # without --skip-invalid the first bad line stops the run
    cp = cli("produce", "u", "--format", "json", "--key-field", "id", input=data, check=1)
    msg = one_error_line(cp)
    assert "line 2" in msg and "--key-field id" in msg
    assert [r.key for r in cli.records("u")] == [b"ok"]


def test_json_invalid_utf8_refused_by_line(cli):
    cli.create("t")
    cp = cli("produce", "t", "--format", "json", "--key-field", "id",
             input=b'{"id":"ok"}\n{"id":"\xff\xfe"}\n{"id":"after"}\n', check=1)
    msg = one_error_line(cp)
    assert "line 2" in msg and "utf-8" in msg.lower()
    assert cli.values("t") == [b'{"id":"ok"}']


def test_json_null_line_message_uses_json_terms(cli):
    cli.create("t")
    cp = cli("produce", "t", "--format", "json", "--key-field", "id", input=b"null\n", check=1)
    msg = one_error_line(cp)
    assert "NoneType" not in msg and "null" in msg, msg


def test_json_key_field_lone_surrogate(cli):
    cli.create("t")
    cp = cli("produce", "t", "--format", "json", "--key-field", "id",
             input=b'{"id":"ok"}\n{"id":"\\ud800"}\n', check=1)
    msg = one_error_line(cp)
    assert "line 2" in msg
    assert cli.values("t") == [b'{"id":"ok"}']


def test_json_non_standard_constants_refused(cli):
    cli.create("t")
    cp = cli("produce", "t", "--format", "json", "--key-field", "id", "--skip-invalid", "--json",
             input=b'{"id": NaN}\n{"id": 1e400}\n{"id": 1, "v": -Infinity}\n')
    assert json.loads(cp.stdout)["skipped_lines"] == [1, 2, 3]


NON_UTF8_ARGS = {
    "key-separator": (["produce", "t", "--key-separator", b"\xff"], b"k\xffv\n"),
    "null-marker": (["produce", "t", "--null-marker", b"\xff"], b"a\n"),
    "header-key": (["produce", "t", "--header", b"k\xff=v"], b"a\n"),
    "consume-template": (["consume", "t", "--format", b"%s\xff"], b""),
}


@pytest.mark.parametrize("case", list(NON_UTF8_ARGS))
def test_non_utf8_arguments(cli, case):
    cli.append("t", b"existing")
    args, data = NON_UTF8_ARGS[case]
    cp = cli(*args, input=data, check=None)  # the fixture fails on a traceback
    assert cp.returncode in (0, 1)
    if cp.returncode:
        one_error_line(cp)


# ================================================================== 4. permissions
def _modes(root: Path) -> dict[str, int]:
    out = {}
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            p = os.path.join(dp, n)
            out[os.path.relpath(p, root)] = os.lstat(p).st_mode
    out["."] = os.lstat(root).st_mode
    return out


def _exercise_everything(cli: CLI, mask: int) -> dict[str, int]:
    """Create every kind of file fslog makes, under ``mask``; return the modes seen
    (including a live group member's lock file)."""
    pre = umask_of(mask)
    run_with(cli, ["topic", "create", "t", "--partitions", "2", "--config", "segment.bytes=2000"],
             preexec=pre, check=0)
    run_with(cli, ["produce", "t"], b"\n".join(lines_of(500)) + b"\n", preexec=pre, check=0)
    run_with(cli, ["produce", "auto"], b"x\n", preexec=pre, check=0)
    run_with(cli, ["consume", "t", "--group", "g"], preexec=pre, check=0)
    run_with(cli, ["group", "reset", "g", "--topic", "t", "--to-earliest", "--execute"],
             preexec=pre, check=0)
    cli.segments("t")[0].with_suffix(".index").unlink()  # verify --repair rewrites it
    run_with(cli, ["verify", "--repair"], preexec=pre, check=0)
    run_with(cli, ["topic", "delete", "auto"], preexec=pre, check=0)
    member = cli.popen("consume", "t", "--group", "live", "--follow", stdout=subprocess.DEVNULL,
                       preexec_fn=pre)
    members = cli.root / "groups" / "live" / "members"
    wait_for(lambda: members.is_dir() and any(members.iterdir()), what="a live member")
    wait_for(lambda: any((cli.root / "groups" / "live" / "owners").glob("*.lock")), what="owner locks")
    modes = _modes(cli.root)
    member.terminate()
    assert member.wait(timeout=20) == 0
    return modes


@pytest.mark.parametrize("mask", [0o000, 0o077], ids=["umask-000", "umask-077"])
def test_created_files_modes(cli, mask):
    modes = _exercise_everything(cli, mask)
    kinds = {os.path.basename(p) for p in modes}
    for expected in ("topic.json", ".lock", "registry.json", "0", "t-0.lock", "tmp", "topics",
                     "groups", "members", "owners", "offsets"):
        assert expected in kinds, expected
    assert any(p.endswith(".index") for p in modes) and any(p.endswith(".timeindex") for p in modes)
    assert any(p.startswith(os.path.join("groups", "live", "members") + os.sep) for p in modes)
    bad = {}
    for p, m in modes.items():
        if p.startswith("groups") and p.endswith(os.sep + ".lock"):
            continue  # (a lock file; groups keep none since the registry is lock-free)
        want = (0o755 if stat.S_ISDIR(m) else 0o644) & ~mask
        if stat.S_IMODE(m) != want or stat.S_IMODE(m) & 0o002:
            bad[p] = oct(stat.S_IMODE(m))
    assert bad == {}


def test_group_registry_files_honour_umask(cli):
    cli.produce("t", b"a\n")
    run_with(cli, ["consume", "t", "--group", "g"], preexec=umask_of(0o077), check=0)
    files = list((cli.root / "groups" / "g").glob("registry.*"))
    assert len(files) == 3  # two versions (join, leave) and registry.json
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}


# ================================================================== 5. damaged index files
INDEX_LINES = [b"record-%05d-%s" % (i, b"v" * (i % 23)) for i in range(3000)]


@pytest.fixture(scope="module")
def three_segments_root(tmp_path_factory):
    """Topic t in three segments, made through the CLI once per module (and worker)."""
    c = CLI(tmp_path_factory.mktemp("three-segments") / "root")
    c.create("t", "--config", "max.message.bytes=2048", "--config", "segment.bytes=40000")
    c.produce("t", b"\n".join(INDEX_LINES) + b"\n")
    return c.root


@pytest.fixture
def three_segments(cli, three_segments_root):
    """A copy of that root for the test (which damages it)."""
    shutil.copytree(three_segments_root, cli.root)
    segs = cli.segments("t")
    assert len(segs) == 3
    for s in segs:
        assert s.with_suffix(".index").stat().st_size >= 3 * 8
    return segs


def _damage(seg: Path, how: str) -> Path:
    idx, tidx = seg.with_suffix(".index"), seg.with_suffix(".timeindex")
    data = idx.read_bytes()
    rnd = random.Random(how)
    if how == "odd-size":
        idx.write_bytes(data[:len(data) // 2 - 3])
        return idx
    if how == "random-bytes":
        idx.write_bytes(rnd.randbytes(len(data)))
        return idx
    if how == "random-timeindex":
        tidx.write_bytes(rnd.randbytes(len(tidx.read_bytes()) or 24))
        return tidx
    if how == "no-timeindex":
        tidx.unlink()
        return tidx
    entries = list(struct.iter_unpack(">ii", data))
    size = seg.stat().st_size
    if how == "points-past-end":
        entries[-1] = (entries[-1][0], size + 4096)
    elif how == "entries-past-end":  # plausible, sorted entries beyond the log
        last = entries[-1][0]
        entries += [(last + 100 * i, size + 1000 * i) for i in range(1, 50)]
    idx.write_bytes(b"".join(struct.pack(">ii", *e) for e in entries))
    return idx


DAMAGES = ["odd-size", "random-bytes", "random-timeindex", "no-timeindex", "points-past-end",
           "entries-past-end"]


@pytest.mark.parametrize("which, how", [("sealed", h) for h in DAMAGES] +
                         [("active", h) for h in ("odd-size", "random-bytes", "points-past-end")])
def test_damaged_index(cli, three_segments, which, how):
    seg = three_segments[0] if which == "sealed" else three_segments[-1]
    base = int(seg.name.split(".")[0])
    nxt = int(three_segments[1].name.split(".")[0]) if which == "sealed" else len(INDEX_LINES)
    originals = {p: p.read_bytes() for s in three_segments
                 for p in (s.with_suffix(".index"), s.with_suffix(".timeindex"))}
    damaged = _damage(seg, how)
    mid = (base + nxt) // 2
    cases = [["consume", "t"], ["consume", "t", "--offset", str(mid)],
             ["consume", "t", "--from-time", "1h"],
             ["consume", "t", "--offset", str(nxt - 1), "-m", "1"]]
    want = [INDEX_LINES, INDEX_LINES[mid:], INDEX_LINES, [INDEX_LINES[nxt - 1]]]
    for c, w, cp in zip(cases, want, cli.run_many(cases)):
        assert cp.stdout == b"\n".join(w) + b"\n", c
        assert cp.stderr == b"", c
    cp = cli("verify", check=1)
    assert str(damaged) in cp.stdout.decode()
    assert {p.split(":")[0] for p in cp.stdout.decode().splitlines()} == {"problem"}
    cp = cli("verify", "--repair")
    assert str(damaged) in cp.stdout.decode()
    cli("verify")
    assert damaged.with_suffix(".index").read_bytes() == originals[damaged.with_suffix(".index")]
    if which == "active":
        assert damaged.with_suffix(".timeindex").read_bytes() == originals[damaged.with_suffix(".timeindex")]
    assert cli("consume", "t", "--offset", str(mid)).stdout == b"\n".join(INDEX_LINES[mid:]) + b"\n"


@pytest.mark.parametrize("how", ["random-bytes", "random-timeindex", "entries-past-end"])
def test_damaged_active_index_fixed_by_next_writer(cli, three_segments, how):
    _damage(three_segments[-1], how)
    more = lines_of(500, b"more-%04d")
    cli.produce("t", b"\n".join(more) + b"\n")
    cli("verify")
    recs = cli.records("t")
    assert [r.offset for r in recs] == list(range(len(INDEX_LINES) + len(more)))
    assert [r.value for r in recs] == INDEX_LINES + more
    mid = len(INDEX_LINES) - 10
    assert cli("consume", "t", "--offset", str(mid)).stdout == \
        b"\n".join(INDEX_LINES[mid:] + more) + b"\n"
