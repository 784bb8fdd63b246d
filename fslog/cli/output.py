"""All terminal output of the CLI goes through here.

stdout carries data only (records, --json documents, tables of inspecting commands);
messages go to stderr. Tables use rich on a terminal and plain tab-separated lines
otherwise, so scripts can cut(1) them. Markup is off for user data.
"""

from __future__ import annotations

import json
import os
import sys


def err(message: str) -> None:
    """A one-line message on stderr."""
    sys.stderr.write(f"fslog: {message}\n")
    sys.stderr.flush()


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def print_table(columns: list[str], rows: list[list], title: str | None = None) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        table = Table(title=title, title_justify="left")
        for c in columns:
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*["" if v is None else str(v) for v in r])
        Console(markup=False, highlight=False).print(table)
    else:
        out = sys.stdout
        out.write("\t".join(columns) + "\n")
        for r in rows:
            out.write("\t".join("" if v is None else str(v) for v in r) + "\n")
        out.flush()


def quiet_broken_pipe() -> None:
    """After EPIPE on stdout: point stdout at /dev/null so the exit flush stays silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except OSError:
        pass
