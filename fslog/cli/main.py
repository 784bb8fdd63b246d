"""Entry point of the ``fslog`` command: global options and error handling.

Expected failures (``FslogError``, OS errors such as a full disk) become one line on
stderr and exit 1; usage errors exit 2; a closed stdout pipe ends quietly.

Start-up time matters (scripts and tests start ``fslog`` many times): ``run`` imports
and registers only the command named on the command line (typer inspects every
registered function's signature on each start); ``fslog --help``, an unknown command
and shell completion get the whole app.
"""

from __future__ import annotations

import os
import sys

import typer


def _version(value: bool) -> None:
    if value:
        try:  # the installed distribution's version (pyproject.toml)
            from importlib.metadata import version
            v = version("fslog")
        except Exception:  # running from a source tree that is not installed
            from .. import __version__ as v
        sys.stdout.write(f"fslog {v}\n")
        raise typer.Exit()


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


def _topic(app: typer.Typer) -> None:
    from . import topic
    app.add_typer(topic.app, name="topic")


def _produce(app: typer.Typer) -> None:
    from . import produce
    app.command("produce", help=produce.HELP, no_args_is_help=False)(produce.produce)


def _consume(app: typer.Typer) -> None:
    from . import consume
    app.command("consume", help=consume.HELP)(consume.consume)


def _verify(app: typer.Typer) -> None:
    from . import verify
    app.command("verify", help=verify.HELP)(verify.verify)


def _clean(app: typer.Typer) -> None:
    from . import clean
    app.command("clean", help=clean.HELP)(clean.clean)


def _group(app: typer.Typer) -> None:
    from . import group
    app.add_typer(group.app, name="group")


def _status(app: typer.Typer) -> None:
    from . import status
    app.command("status", help=status.HELP)(status.status)


def _top(app: typer.Typer) -> None:
    from . import top
    app.command("top", help=top.HELP)(top.top)


def _serve(app: typer.Typer) -> None:
    from . import serve
    serve_app = typer.Typer(help=serve.HELP, rich_markup_mode=None,
                            context_settings={"help_option_names": ["-h", "--help"]})
    serve_app.callback(invoke_without_command=True, help=serve.HELP)(serve.serve)
    serve_app.add_typer(serve.users_app, name="users", help=serve.USERS_HELP)
    app.add_typer(serve_app, name="serve")


def _replicate(app: typer.Typer) -> None:
    from . import replicate
    app.command("replicate", help=replicate.HELP)(replicate.replicate)


def _promote(app: typer.Typer) -> None:
    from . import replicate
    app.command("promote", help=replicate.PROMOTE_HELP)(replicate.promote)


def _mirror(app: typer.Typer) -> None:
    from . import mirror
    app.command("mirror", help=mirror.HELP)(mirror.mirror)


# every command, in the order `fslog --help` lists them
COMMANDS = {
    "topic": _topic, "produce": _produce, "consume": _consume, "verify": _verify,
    "clean": _clean, "group": _group, "status": _status, "top": _top, "serve": _serve,
    "replicate": _replicate, "promote": _promote, "mirror": _mirror,
}


def command_named(args: list[str]) -> str | None:
    """The command ``args`` (``sys.argv[1:]``) invoke, past the global ``--root``;
    None when the whole app has to answer (help, --version, an unknown command, any
    other option before the command)."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--root":
            i += 2
        elif a.startswith("--root="):
            i += 1
        else:
            return a if a in COMMANDS else None
    return None


def build_app(only: str | None = None) -> typer.Typer:
    """The ``fslog`` app with every command, or with only the command ``only``."""
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
    app.callback()(main)
    for name, add in COMMANDS.items():
        if only is None or name == only:
            add(app)
    return app


def run() -> None:
    from ..errors import FslogError, UsageError
    from .output import err, quiet_broken_pipe
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    try:
        build_app(None if completing else command_named(sys.argv[1:]))()
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
