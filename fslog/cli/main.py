"""Entry point of the ``fslog`` command: global options and error handling.

Expected failures (``FslogError``, OS errors such as a full disk) become one line on
stderr and exit 1; usage errors exit 2; a closed stdout pipe ends quietly.

Start-up time matters (scripts and tests start ``fslog`` many times): ``run`` imports
and registers only the command named on the command line (typer inspects every
registered function's signature on each start); ``fslog --help``, an unknown command
and shell completion get the whole app.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

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


# Every command, in the order `fslog --help` lists them: (module under fslog.cli,
# function, help-text constant) for a plain command; (module, "app", None) for a command
# group that is its own Typer app. ``serve`` is built by ``_add_serve``.
COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "topic": ("topic", "app", None),
    "produce": ("produce", "produce", "HELP"),
    "consume": ("consume", "consume", "HELP"),
    "verify": ("verify", "verify", "HELP"),
    "clean": ("clean", "clean", "HELP"),
    "group": ("group", "app", None),
    "status": ("status", "status", "HELP"),
    "top": ("top", "top", "HELP"),
    "serve": ("serve", "serve", "HELP"),
    "replicate": ("replicate", "replicate", "HELP"),
    "promote": ("replicate", "promote", "PROMOTE_HELP"),
    "mirror": ("mirror", "mirror", "HELP"),
}


def _add_serve(app: typer.Typer, serve: ModuleType) -> None:
    """``fslog serve`` runs the server itself and holds the ``users`` subcommands."""
    serve_app = typer.Typer(help=serve.HELP, rich_markup_mode=None,
                            context_settings={"help_option_names": ["-h", "--help"]})
    serve_app.callback(invoke_without_command=True, help=serve.HELP)(serve.serve)
    serve_app.add_typer(serve.users_app, name="users", help=serve.USERS_HELP)
    app.add_typer(serve_app, name="serve")


def _add(app: typer.Typer, name: str) -> None:
    """Import the module of command ``name`` and register the command on ``app``."""
    module_name, attr, help_attr = COMMANDS[name]
    module = importlib.import_module(f".{module_name}", __package__)
    if name == "serve":
        _add_serve(app, module)
    elif help_attr is None:
        app.add_typer(getattr(module, attr), name=name)
    else:
        app.command(name, help=getattr(module, help_attr))(getattr(module, attr))


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
    for name in COMMANDS:
        if only is None or name == only:
            _add(app, name)
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
