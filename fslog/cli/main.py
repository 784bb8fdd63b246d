"""Entry point of the ``fslog`` command: global options and error handling.

Expected failures (``FslogError``, OS errors such as a full disk) become one line on
stderr and exit 1; usage errors exit 2; a closed stdout pipe ends quietly.

Start-up time matters (scripts and tests start ``fslog`` many times). ``run`` first
reads a plain command line itself (``params.parse``, from the commands' own declarations)
and calls the command without importing typer at all; whatever that reading declines
(help, --version, an error in the command line, completion, ``serve``) goes to typer,
which then imports and registers only the command named on the command line (typer
inspects every registered function's signature on each start); ``fslog --help``, an
unknown command and shell completion get the whole app.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .params import COMMANDLINE, DEFAULT, ENVIRONMENT, Context, Group, Option, Source, parse, typer_command, typer_group

if TYPE_CHECKING:
    import typer


def _version(value: bool) -> None:
    if value:
        import typer
        try:  # the installed distribution's version (pyproject.toml)
            from importlib.metadata import version
            v = version("fslog")
        except Exception:  # running from a source tree that is not installed
            from .. import __version__ as v
        sys.stdout.write(f"fslog {v}\n")
        raise typer.Exit()


def main(
    ctx: Context,
    root: str | None = Option(
        None, "--root", envvar="FSLOG_ROOT", metavar="DIR",
        help="The log's root directory [default: $XDG_DATA_HOME/fslog, ~/.local/share/fslog]."),
    version: bool = Option(False, "--version", callback=_version, is_eager=True,
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
    import typer
    serve_app = typer.Typer(help=serve.HELP, rich_markup_mode=None,
                            context_settings={"help_option_names": ["-h", "--help"]})
    serve_app.callback(invoke_without_command=True, help=serve.HELP)(typer_command(serve.serve))
    serve_app.add_typer(typer_group(serve.users_app), name="users", help=serve.USERS_HELP)
    app.add_typer(serve_app, name="serve")


def _add(app: typer.Typer, name: str) -> None:
    """Import the module of command ``name`` and register the command on ``app``."""
    module_name, attr, help_attr = COMMANDS[name]
    module = importlib.import_module(f".{module_name}", __package__)
    if name == "serve":
        _add_serve(app, module)
    elif help_attr is None:
        app.add_typer(typer_group(getattr(module, attr)), name=name)
    else:
        app.command(name, help=getattr(module, help_attr))(typer_command(getattr(module, attr)))


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
    import typer
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
    app.callback()(typer_command(main))
    for name in COMMANDS:
        if only is None or name == only:
            _add(app, name)
    return app


def parsed(args: list[str]) -> tuple[Any, dict[str, Any], Context] | None:
    """(the command's function, its keyword arguments, the context of ``fslog`` itself)
    for the command line ``args`` (``sys.argv[1:]``) if ``params.parse`` reads all of it
    (the global options as click reads a group's: before the command); None if typer
    has to answer."""
    defaults = main.__defaults__ or ()
    root_param = defaults[0]
    root: str | None = None
    source: Source = DEFAULT
    i, n = 0, len(args)
    while i < n:
        a = args[i]
        name, eq, value = a.partition("=")
        if name not in root_param.decls:
            break
        if not eq:
            if i + 1 >= n:
                return None
            value = args[i + 1]
            i += 1
        root, source = value, COMMANDLINE
        i += 1
    if i >= n or args[i] not in COMMANDS or args[i] == "serve":
        return None  # (serve: a group with its own callback, and a server: typer's)
    module_name, attr, _ = COMMANDS[args[i]]
    target = getattr(importlib.import_module(f".{module_name}", __package__), attr)
    rest = args[i + 1:]
    if isinstance(target, Group):
        if not rest or rest[0] not in target.commands:
            return None
        target, rest = target.commands[rest[0]][0], rest[1:]
    got = parse(target, rest)
    if got is None:
        return None
    ctx_name, kwargs, sources = got
    if root is None:
        env = os.environ.get(root_param.kw["envvar"])
        if env:  # (as click: an empty variable is no value)
            root, source = env, ENVIRONMENT
    top = Context(sources={"root": source})
    main(top, root=root, version=False)
    if ctx_name is not None:
        kwargs[ctx_name] = Context(obj=top.obj, sources=sources)
    return target, kwargs, top


def _invoke(func, kwargs: dict[str, Any]) -> None:
    """Call a command as typer's main does in standalone mode (its ending of EOF,
    Ctrl-C and a closed stdout pipe)."""
    import errno
    try:
        func(**kwargs)
    except EOFError:
        sys.stderr.write("\nAborted!\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
        from .output import quiet_broken_pipe
        quiet_broken_pipe()
        sys.exit(1)


def run() -> None:
    from ..errors import FslogError, UsageError
    from .output import err, quiet_broken_pipe
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    try:
        got = None if completing else parsed(sys.argv[1:])
        if got is not None:
            _invoke(got[0], got[1])
        else:
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
