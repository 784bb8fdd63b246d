"""The parsed path of the CLI (fslog/cli/params.py) against typer, on many command lines of
every command: whatever ``parse`` accepts, typer accepts with the same values and sources;
what it declines goes to typer anyway. And the plain command lines people type are
accepted (so the fast path is taken), and run end to end without importing typer."""

from __future__ import annotations

import importlib
import os
import random
import subprocess
import sys

import pytest
import typer

from fslog.cli import main as cli_main
from fslog.cli.params import Group, _specs, parse, typer_command


def _commands():
    """(path, function) of every command ``parse`` may read (serve is typer's)."""
    out = []
    for name, (module_name, attr, _) in cli_main.COMMANDS.items():
        if name == "serve":
            continue
        target = getattr(importlib.import_module(f"fslog.cli.{module_name}"), attr)
        if isinstance(target, Group):
            for sub, (func, _kw) in target.commands.items():
                out.append((f"{name} {sub}", func))
        else:
            out.append((name, target))
    return out


COMMANDS = _commands()

STR = ["x", "", "-", "--", "-x", "a=b", "--json", "ü", " ", "-1", "orders"]
INT = ["0", "1", "7", "-1", " 3", "1_0", "x", "1.5", "+2", "99999999999999999999", ""]
FLOAT = ["0", "0.5", "-0.1", "inf", "nan", "1e3", "x", "1_0.5", " 2", "0.001", "0.0005", ""]
POSITIONAL = ["t", "-", "a b", "x", "orders", "--", "5"]
JUNK = ["--bogus", "-Z", "-h", "--help", "-qv", "--json=1", "--=", "---x"]


def _typer_values(func, args):
    """(values, sources) typer calls ``func`` with for ``args``, or None if it refuses."""
    seen = {}

    def witness(*a, **kw):
        seen.update(kw)

    app = typer.Typer(add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})
    app.command()(typer_command(func, call=witness))
    try:
        app(args, standalone_mode=False, prog_name="fslog")
    except (typer.Exit, SystemExit, Exception):  # click's usage errors, help's exit
        return None
    if not seen:
        return None  # (help printed)
    ctx_name = _specs(func)[0]
    ctx = seen.pop(ctx_name) if ctx_name else None
    sources = {k: ctx.get_parameter_source(k).name for k in seen} if ctx else {}
    return seen, sources


def _sample(func, rng):
    ctx_name, specs = _specs(func)
    words: list[str] = []
    for s in specs:  # mostly with what the command requires
        if s.param.default is ... and rng.random() < 0.9:
            words += ["t"] if s.param.argument else [s.param.decls[0], "1"]
    for _ in range(rng.randrange(0, 6)):
        r = rng.random()
        options = [s for s in specs if not s.param.argument]
        if r < 0.55 and options:
            s = rng.choice(options)
            decl = rng.choice(s.param.decls)
            names = decl.split("/")
            name = rng.choice(names)
            if s.convert is None:
                words.append(name)
                continue
            pool = STR if s.convert is str else INT if s.convert.__name__ == "_convert_int" else FLOAT
            v = rng.choice(pool)
            form = rng.random()
            if form < 0.5 or (form < 0.8 and not name.startswith("--")):
                words += [name, v] if form < 0.5 else [name + v]
            elif name.startswith("--"):
                words.append(f"{name}={v}")
            else:
                words += [name, v]
        elif r < 0.9:
            words.append(rng.choice(POSITIONAL))
        else:
            words.append(rng.choice(JUNK))
    return words


@pytest.mark.parametrize("path,func", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_parse_agrees_with_typer(path, func):
    assert _specs(func) is not None, f"{path}: parse cannot read this command's declarations"
    rng = random.Random(path)
    accepted = 0
    for _ in range(250):
        args = _sample(func, rng)
        got = parse(func, args)
        if got is None:
            continue
        accepted += 1
        _, values, sources = got
        want = _typer_values(func, args)
        assert want is not None, f"fslog {path} {args}: parse accepted what typer refuses"
        want_values, want_sources = want
        assert values == want_values, f"fslog {path} {args}"
        assert {k: s.name for k, s in sources.items()} == want_sources, f"fslog {path} {args}"
        for k, v in values.items():  # same types too (1 == 1.0 == True)
            assert type(v) is type(want_values[k]), f"fslog {path} {args}: {k}"
    assert accepted > 10, f"{path}: parse accepted only {accepted} of 250 command lines"


PLAIN = [
    ["produce", "t"], ["produce", "t", "--format", "json", "--key-field", "user_id"],
    ["produce", "t", "-K", ":"], ["produce", "t", "-K:", "--partitions", "4", "-q"],
    ["produce", "t", "-H", "a=1", "--header=b=2", "--linger-ms", "0"],
    ["consume", "t"], ["consume", "a", "b", "--format", "json", "--group", "g"],
    ["topic", "create", "t", "--partitions", "3", "-c", "segment.bytes=1048576"],
    ["topic", "list", "--json"], ["topic", "describe", "t"], ["group", "list"],
    ["verify"], ["clean", "t"], ["status"],
]


@pytest.mark.parametrize("args", PLAIN, ids=[" ".join(a) for a in PLAIN])
def test_plain_command_lines_take_the_parsed_path(args, monkeypatch):
    monkeypatch.delenv("FSLOG_ROOT", raising=False)
    got = cli_main.parsed(["--root", "/nonexistent/r"] + args)
    assert got is not None
    func, kwargs, top = got
    assert top.obj == {"root": "/nonexistent/r"}
    assert _typer_values(func, args[2:] if args[0] in ("topic", "group") else args[1:])[0] == \
        {k: v for k, v in kwargs.items() if k != _specs(func)[0]}


def test_global_root_as_click_reads_it(monkeypatch):
    monkeypatch.setenv("FSLOG_ROOT", "/from/env")
    _, _, top = cli_main.parsed(["topic", "list"])
    assert top.obj == {"root": "/from/env"}
    assert top.get_parameter_source("root").name == "ENVIRONMENT"
    _, _, top = cli_main.parsed(["--root=/a", "--root", "/b", "topic", "list"])
    assert top.obj == {"root": "/b"} and top.get_parameter_source("root").name == "COMMANDLINE"
    monkeypatch.setenv("FSLOG_ROOT", "")  # empty: no value, as click
    _, _, top = cli_main.parsed(["topic", "list"])
    assert top.obj == {"root": None} and top.get_parameter_source("root").name == "DEFAULT"
    for args in (["--root"], ["--version"], ["-h", "produce", "t"], ["produce", "t", "--help"],
                 ["topic"], ["topic", "nope"], ["serve"], ["nope"], [], ["produce", "--", "t"]):
        assert cli_main.parsed(args) is None, args


def test_plain_commands_run_without_importing_typer(tmp_path):
    code = ("import sys; from fslog.cli.main import run\n"
            "try:\n    run()\nfinally:\n"
            "    print('typer' in sys.modules, file=sys.stderr)\n")
    env = dict(os.environ, FSLOG_ROOT=str(tmp_path))
    for args, stdin in ((["topic", "create", "t", "-p", "2"], b""), (["produce", "t"], b"a\nb\n"),
                        (["consume", "t"], b"")):
        p = subprocess.run([sys.executable, "-c", code, *args], input=stdin, env=env,
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stderr.decode().splitlines()[-1] == "False", (args, p.stderr)
    assert sorted(p.stdout.split()) == [b"a", b"b"]
    # a raw produce does not import orjson either (half of its start-up)
    code2 = code.replace("'typer' in sys.modules", "'orjson' in sys.modules")
    p = subprocess.run([sys.executable, "-c", code2, "produce", "t"], input=b"c\n", env=env,
                       capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stderr.decode().splitlines()[-1] == "False", p.stderr
    # what the parsed path declines still works, through typer
    p = subprocess.run([sys.executable, "-c", code, "produce", "--help"], env=env,
                       capture_output=True, timeout=60)
    assert p.returncode == 0 and b"--key-field" in p.stdout
    assert p.stderr.decode().splitlines()[-1] == "True"
