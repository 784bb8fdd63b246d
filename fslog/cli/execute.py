"""``fslog consume ... --exec CMD``: run a command per record, commit after it succeeded.

Parses the --exec flags into an ``Executor`` (``fslog/executor.py``), which does the
work; this module only builds it, handles SIGINT/SIGTERM and formats its reports.
"""

from __future__ import annotations

import signal
import sys

from ..errors import FslogError


def run_exec(log, topics: list[str], *, group: str | None, start, partition: int | None,
             command: str, exec_argv: bool, fmt: str, batch: int, concurrency: int,
             retries: int, retry_backoff: float, retry_backoff_max: float,
             exec_timeout: float | None, dead_letter: str | None, follow: bool,
             idle_timeout: float | None, max_messages: int | None, shutdown_timeout: float,
             session_timeout: float, skip_corrupt: bool, quiet: bool) -> None:
    from ..clients.executor import Executor
    from ..storage.files import validate_name
    from .output import err

    cmd: str | list[str]
    if exec_argv:
        import shlex
        try:
            argv = shlex.split(command)
        except ValueError as e:
            raise FslogError(f"--exec {command!r}: {e} (with --exec-argv the command is split "
                             f"like a shell would, without running one)") from None
        if not argv:
            raise FslogError("--exec is empty: give the command to run for each record")
        cmd, shell = argv, False
    else:
        if not command.strip():
            raise FslogError("--exec is empty: give the command to run for each record")
        cmd, shell = command, True
    if dead_letter is not None:
        validate_name(dead_letter, "topic")
        if dead_letter in topics:
            raise FslogError(f"--dead-letter {dead_letter!r} is also a topic being consumed: "
                             f"failed records would come back to the same command; choose "
                             f"another topic")

    if fmt == "raw":
        render = None  # the value and a newline
    elif fmt == "json":
        from .formats import json_line
        render = json_line
    else:
        from .formats import Template
        render = Template(fmt).render

    stop_box: list = []
    holder: dict = {}

    def _on_signal(signum, frame):
        stop_box.append(signum)
        ex = holder.get("executor")
        if ex is not None:
            ex.stop()

    old_term = signal.signal(signal.SIGTERM, _on_signal)
    old_int = signal.signal(signal.SIGINT, _on_signal)
    source = producer = None
    try:
        from ..clients.consumer import open_consumer
        source = open_consumer(log, topics, group, partition, start=start, follow=follow,
                               session_timeout=session_timeout, skip_corrupt=skip_corrupt)
        if dead_letter is not None:
            producer = log.producer(dead_letter, background=False)
            if producer.created:
                err(f"created dead-letter topic {dead_letter!r} with "
                    f"{producer.topic.partition_count} partition"
                    f"{'s' if producer.topic.partition_count != 1 else ''}")

        def on_event(kind: str, info: dict) -> None:
            if kind == "warning":
                err(info["message"])
            elif kind == "retry":
                err(f"{info['where']}: {info['reason']} (attempt {info['attempt']} of "
                    f"{info['attempts']}); retrying in {info['delay']:g} s")
            elif kind == "dead_letter":
                err(f"{info['where']}: {info['reason']} after {info['attempts']} attempt"
                    f"{'s' if info['attempts'] != 1 else ''}; written to dead-letter topic "
                    f"{info['topic']!r}")
            elif kind == "abandoned":
                err(f"{info['where']}: {info['reason']}; not retried, as fslog is stopping: "
                    f"not committed, the next run handles it again")
            elif kind == "killed":
                err(f"stopped {info['count']} command(s) still running after "
                    f"{info['timeout']:g} s ({', '.join(info['where'])}); their records are "
                    f"not committed and will be handled again")

        env = {"FSLOG_ROOT": log.root}
        if group is not None:
            env["FSLOG_GROUP"] = group
        ex = Executor(source, cmd, shell=shell, render=render, batch=batch,
                      concurrency=concurrency, retries=retries, retry_backoff=retry_backoff,
                      retry_backoff_max=retry_backoff_max, timeout=exec_timeout,
                      dead_letter=producer, group=group, follow=follow,
                      idle_timeout=idle_timeout, max_records=max_messages,
                      shutdown_timeout=shutdown_timeout, env=env, on_event=on_event,
                      skip_corrupt=skip_corrupt)
        holder["executor"] = ex
        if stop_box:
            ex.stop()
        from .progress import exec_progress
        with exec_progress(ex, source, enabled=not follow and not quiet):
            stats = ex.run()
        if not quiet and sys.stderr.isatty():
            dl = f", {stats['dead_lettered']} to {dead_letter!r}" if stats["dead_lettered"] else ""
            err(f"handled {stats['records']} records with {stats['commands']} command(s){dl}")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            try:
                if source is not None:
                    source.close()  # commits what was handled; leaves the group
            finally:
                if producer is not None:
                    producer.close()
        finally:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)
