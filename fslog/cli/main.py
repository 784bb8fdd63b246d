"""Entry point of the ``fslog`` command: global options and error handling.

Expected failures (``FslogError``, OS errors such as a full disk) become one line on
stderr and exit 1; usage errors exit 2; a closed stdout pipe ends quietly.
"""

from __future__ import annotations

import sys

import typer

from . import clean, consume, group, mirror, produce, replicate, serve, status, top, topic, verify

app = typer.Typer(
    name="fslog",
    help="Apache Kafka's model over a log kept in ordinary files: topics, partitions, "
         "producers and consumers, with no server.\n\n"
         "Example: fslog produce orders < events.jsonl; fslog consume orders --format json",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        try:  # the installed distribution's version (pyproject.toml)
            from importlib.metadata import version
            v = version("fslog")
        except Exception:  # running from a source tree that is not installed
            from .. import __version__ as v
        sys.stdout.write(f"fslog {v}\n")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    root: str = typer.Option(
        None, "--root", envvar="FSLOG_ROOT", metavar="DIR",
        help="The log's root directory [default: $XDG_DATA_HOME/fslog, ~/.local/share/fslog]."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    if root is not None and root.strip() == "" and \
            getattr(ctx.get_parameter_source("root"), "name", None) == "COMMANDLINE":
        from ..errors import FslogError
        raise FslogError("--root is empty: give a directory (an unset variable in a script?)")
    ctx.obj = {"root": root}


app.add_typer(topic.app, name="topic")
app.command("produce", help=produce.HELP, no_args_is_help=False)(produce.produce)
app.command("consume", help=consume.HELP)(consume.consume)
app.command("verify", help=verify.HELP)(verify.verify)
app.command("clean", help=clean.HELP)(clean.clean)
app.add_typer(group.app, name="group")
app.command("status", help=status.HELP)(status.status)
app.command("top", help=top.HELP)(top.top)
serve_app = typer.Typer(help=serve.HELP, rich_markup_mode=None,
                        context_settings={"help_option_names": ["-h", "--help"]})
serve_app.callback(invoke_without_command=True, help=serve.HELP)(serve.serve)
serve_app.add_typer(serve.users_app, name="users", help=serve.USERS_HELP)
app.add_typer(serve_app, name="serve")
app.command("replicate", help=replicate.HELP)(replicate.replicate)
app.command("promote", help=replicate.PROMOTE_HELP)(replicate.promote)
app.command("mirror", help=mirror.HELP)(mirror.mirror)


def run() -> None:
    from ..errors import FslogError, UsageError
    from .output import err, quiet_broken_pipe
    try:
        app()
    except UsageError as e:
        err(str(e))
        sys.exit(2)
    except FslogError as e:
        err(str(e))
        sys.exit(1)
    except BrokenPipeError:
        quiet_broken_pipe()
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        import errno
        if e.errno == errno.ELOOP and e.filename:
            err(f"{e.filename} is a symbolic link: fslog does not follow links under its root; "
                f"remove it")
        else:
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            err(f"{e.strerror or e}{where}")
        sys.exit(1)


if __name__ == "__main__":
    run()
