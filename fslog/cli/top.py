"""``fslog top``: a live view of topics and groups."""

from __future__ import annotations

import signal
import sys
import time

from .params import Context, Option

HELP = """A live dashboard of the root: the running fslog serve (address, pid, uptime,
connections, requests/s), per topic the log-end offsets and produce rate,
per group the consume rate, lag, and live members with their partitions. Refreshes in
place every --interval seconds until q, Ctrl-C or SIGTERM. A group that cannot be read
(e.g. a damaged committed-offset file) is reported on stderr (with --once: exit 1) or,
live, on the screen; the others are shown as usual. So is a partition whose background
compaction failed (as in fslog status; --json: each topic's compaction_failures).

Rates are measured between two samples, so --once waits one --interval before printing.
--json prints the same as JSON: one document (with --once) or one line per refresh.

Examples:

  fslog top

  fslog top --once --json | jq '.groups[] | {group, lag, consume_rate}'
"""


_NUMERIC = {"PARTITIONS", "TOTAL", "PRODUCED/S", "GENERATION", "MEMBERS", "LAG", "CONSUMED/S",
            "PID", "UPTIME", "CONNECTIONS", "REQUESTS/S"}


def _fmt_rate(r) -> str:
    return "-" if r is None else f"{r:,.1f}"


def format_uptime(seconds) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _tables(doc: dict):
    topics = [[t["topic"], t["partitions"], " ".join(map(str, t["end_offsets"])),
               t["end_offset_total"], _fmt_rate(t["produce_rate"])] for t in doc["topics"]]
    groups = [[g["group"], g["generation"], len(g["members"]), g["lag"],
               _fmt_rate(g["consume_rate"])] for g in doc["groups"]]
    members = []
    for g in doc["groups"]:
        for m in g["members"]:
            members.append([g["group"], m["member_id"], m["pid"], m["host"],
                            ",".join(m["partitions"]) or "-", m["lag"]])
    servers = [[sv["address"], sv["pid"], format_uptime(sv["uptime_s"]), sv["connections"],
                _fmt_rate(sv["requests_per_s"])] for sv in doc.get("servers", [])]
    tables = [("servers", ["SERVER", "PID", "UPTIME", "CONNECTIONS", "REQUESTS/S"], servers)]
    followers = [[f["replica_id"], f"{f['topic']}/{f['partition']}", f["offset"],
                  f["lag_records"], f["lag_ms"], "yes" if f["in_sync"] else "no"]
                 for sv in doc.get("servers", []) for f in sv.get("followers", [])]
    if followers:
        tables.append(("followers", ["FOLLOWER", "PARTITION", "OFFSET", "LAG", "LAG MS",
                                     "IN SYNC"], followers))
    if not servers:
        tables = []  # no fslog serve on this root: no empty table
    return tables + [
        ("topics", ["TOPIC", "PARTITIONS", "LOG-END OFFSETS", "TOTAL", "PRODUCED/S"], topics),
        ("groups", ["GROUP", "GENERATION", "MEMBERS", "LAG", "CONSUMED/S"], groups),
        ("members", ["GROUP", "MEMBER", "PID", "HOST", "PARTITIONS", "LAG"], members),
    ]


def _renderable(doc: dict, root: str, interval: float):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text
    stamp = time.strftime("%H:%M:%S", time.localtime(doc["time"]))
    parts: list[Text | Table] = [Text(f"fslog top  {root}  {stamp}  every {interval:g} s  (q or Ctrl-C to quit)",
                  style="bold")]
    parts.extend(Text(f"problem: {p}", style="red") for p in doc.get("problems", []))
    for title, columns, rows in _tables(doc):
        table = Table(title=title, title_justify="left", expand=False)
        for c in columns:
            numeric = c in _NUMERIC and not (title == "members" and c == "PARTITIONS")
            table.add_column(c, overflow="fold", justify="right" if numeric else "left")
        for r in rows:
            table.add_row(*[str(v) for v in r])
        if not rows:
            table.add_row(*(["-"] + [""] * (len(columns) - 1)))
        parts.append(table)
    return Group(*parts)


def top(
    ctx: Context,
    interval: float = Option(1.0, "--interval", "-i", min=0.05, metavar="SECONDS", help="Seconds between refreshes (and, with --once, between the two samples)."),
    once: bool = Option(False, "--once", help="Print one view and exit (after one --interval, to measure rates)."),
    json_: bool = Option(False, "--json", help="Print JSON: one document with --once, else one line per refresh."),
) -> None:
    from ..monitor import sample, view
    from .common import open_log
    from .group import report_problems
    from .output import err, print_json, print_table

    log = open_log(ctx)
    reported: set[str] = set()

    def _report_new(doc):  # a problem once, when it appears (not at every refresh)
        for p in doc.get("problems", []):
            if p not in reported:
                reported.add(p)
                err(p)
    stopping: list[int] = []

    def _on_signal(signum, frame):
        stopping.append(signum)

    old_term = signal.signal(signal.SIGTERM, _on_signal)
    old_int = signal.signal(signal.SIGINT, _on_signal)
    try:
        prev = sample(log)
        if once:
            _sleep(interval, stopping)
            doc = view(prev, sample(log))
            if json_:
                print_json(doc)
            else:
                for i, (title, columns, rows) in enumerate(_tables(doc)):
                    if i and not sys.stdout.isatty():
                        sys.stdout.write("\n")
                    print_table(columns, rows, title=title if sys.stdout.isatty() else None)
            report_problems(doc["problems"])
            return
        if json_ or not sys.stdout.isatty():
            while not stopping:
                _sleep(interval, stopping)
                if stopping:
                    break
                cur = sample(log)
                doc = view(prev, cur)
                prev = cur
                _report_new(doc)
                if json_:
                    print_json(doc)
                else:
                    for _title, columns, rows in _tables(doc):
                        print_table(columns, rows)
                    sys.stdout.write("\n")
                    sys.stdout.flush()
            return
        _live(log, prev, interval, stopping, sample, view)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


def _sleep(seconds: float, stopping: list) -> None:
    end = time.monotonic() + seconds
    while not stopping:
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


def _live(log, prev, interval, stopping, sample, view) -> None:
    from rich.console import Console
    from rich.live import Live
    console = Console(markup=False, highlight=False)
    keys = _KeyReader()
    try:
        doc = view(None, prev)
        with Live(_renderable(doc, log.root, interval), console=console, screen=False,
                  auto_refresh=False, transient=False) as live:
            while not stopping:
                end = time.monotonic() + interval
                while not stopping and time.monotonic() < end:
                    if keys.pressed_q(min(0.05, max(0.0, end - time.monotonic()))):
                        return
                cur = sample(log)
                live.update(_renderable(view(prev, cur), log.root, interval), refresh=True)
                prev = cur
    finally:
        keys.close()


class _KeyReader:
    """Reads single keys from a terminal stdin (q quits); does nothing otherwise."""

    def __init__(self):
        self.fd = None
        self.saved = None
        try:
            if sys.stdin.isatty():
                import termios
                import tty
                self.fd = sys.stdin.fileno()
                self.saved = termios.tcgetattr(self.fd)
                tty.setcbreak(self.fd)
        except Exception:
            self.fd = None

    def pressed_q(self, timeout: float) -> bool:
        if self.fd is None:
            time.sleep(timeout)
            return False
        import os
        import select
        if select.select([self.fd], [], [], timeout)[0]:
            return os.read(self.fd, 1) in (b"q", b"Q")
        return False

    def close(self) -> None:
        if self.fd is not None and self.saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
