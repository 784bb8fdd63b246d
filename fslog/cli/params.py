"""The one declaration of every option and argument of the ``fslog`` commands, read two
ways: ``typer_command`` turns a command into typer's (help, errors, completion, the whole
app), ``parse`` reads the command line of a plain invocation without importing typer.

A command is a function whose parameters have ``Option``/``Argument`` defaults and plain
annotations (``str``, ``int``, ``float``, ``bool``, ``Optional[...]`` of those, lists of
str or int; ``Context`` for the context), as with typer: ``Option``, ``Argument`` and
``Group`` take typer's arguments and keep them for ``typer_command``/``typer_group``.

Why two readers: importing typer (its click, inspect, subprocess, shutil, …) costs
about 0.1 CPU-s, a large part of a short command's run and of every script that starts
``fslog`` many times. ``parse`` takes only what it can read exactly as click would
(``--opt VALUE``, ``--opt=VALUE``, ``-o VALUE``, ``-oVALUE``, flags, positional
arguments, repeatable options, numbers within their min/max); anything else (help, an
unknown or misspelt option, a value out of range, a missing argument, ``--``, clustered
short flags) gives None, and the caller hands the command line to typer, which answers
it as it always did. tests/test_cli_params.py checks ``parse`` against typer on many
command lines of every command: whatever ``parse`` accepts, typer accepts with the same
values.

Pure functions and plain data; no state.
"""

from __future__ import annotations

from typing import Any, Callable

_REQUIRED = ...


class Param:
    """An option or argument as declared: typer's positional and keyword arguments."""

    __slots__ = ("argument", "default", "decls", "kw")

    def __init__(self, argument: bool, default: Any, decls: tuple[str, ...], kw: dict[str, Any]):
        self.argument = argument
        self.default = default
        self.decls = decls
        self.kw = kw


def Option(default: Any = _REQUIRED, *decls: str, **kw: Any) -> Any:  # noqa: N802 (typer's name)
    """``typer.Option(default, *decls, **kw)``, declared; every option names its flags."""
    if not decls:
        raise TypeError("Option: give the option's names (e.g. '--format', '-f')")
    return Param(False, default, decls, kw)


def Argument(default: Any = _REQUIRED, **kw: Any) -> Any:  # noqa: N802
    """``typer.Argument(default, **kw)``, declared."""
    return Param(True, default, (), kw)


class Source:
    """Where a value came from: ``name`` as click's ``ParameterSource`` names it."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


COMMANDLINE, ENVIRONMENT, DEFAULT = Source("COMMANDLINE"), Source("ENVIRONMENT"), Source("DEFAULT")


class Context:
    """The annotation of a command's context parameter (typer's ``Context`` in the typer
    app); on the parsed path, the context itself: what the commands use of click's."""

    def __init__(self, obj: Any = None, sources: dict[str, Source] | None = None):
        self.obj = obj
        self.invoked_subcommand: str | None = None
        self._sources = sources or {}

    def get_parameter_source(self, name: str) -> Any:
        return self._sources.get(name)


class Group:
    """A command group (``fslog topic ...``): ``typer.Typer(**kw)`` declared, with its
    commands in order."""

    def __init__(self, **kw: Any):
        self.kw = kw
        self.commands: dict[str, tuple[Callable, dict[str, Any]]] = {}

    def command(self, name: str, **kw: Any) -> Callable[[Callable], Callable]:
        def register(func: Callable) -> Callable:
            self.commands[name] = (func, kw)
            return func
        return register


# ---------------------------------------------------------------- typer's reading

def typer_command(func: Callable, call: Callable | None = None) -> Callable:
    """``func`` as typer reads a command: a function of the same parameters whose
    signature holds typer's ``OptionInfo``/``ArgumentInfo`` and evaluated annotations
    (``call``, if given, is called instead of ``func``: the tests' witness)."""
    import functools
    import inspect
    import typing

    import typer
    hints = typing.get_type_hints(func)
    sig = inspect.signature(func)
    params = []
    for p in sig.parameters.values():
        ann = hints.get(p.name, p.annotation)
        if ann is Context:
            ann = typer.Context
        default = p.default
        if isinstance(default, Param):
            default = typer.Argument(default.default, **default.kw) if default.argument else \
                typer.Option(default.default, *default.decls, **default.kw)
        params.append(p.replace(default=default, annotation=ann))

    @functools.wraps(func, assigned=("__module__", "__name__", "__qualname__", "__doc__"),
                     updated=())
    def command(*args: Any, **kwargs: Any) -> Any:
        return (call or func)(*args, **kwargs)  # (typer's Context has all the commands use)

    command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def typer_group(group: Group) -> Any:
    """``group`` as a ``typer.Typer``."""
    import typer
    app = typer.Typer(**group.kw)
    for name, (func, kw) in group.commands.items():
        app.command(name, **kw)(typer_command(func))
    return app


# ---------------------------------------------------------------- the parsed path

class _Spec:
    """What ``parse`` needs of one parameter."""

    __slots__ = ("name", "param", "convert", "multiple", "flag", "optional")

    def __init__(self, name: str, param: Param, convert: Callable | None, multiple: bool,
                 optional: bool):
        self.name = name
        self.param = param
        self.convert = convert  # None: a bool flag
        self.multiple = multiple
        self.optional = optional


def _convert_int(text: str) -> int:
    return int(text)


def _convert_float(text: str) -> float:
    return float(text)


_TYPES: dict[str, Callable | None] = {"str": str, "int": _convert_int, "float": _convert_float,
                                       "bool": None}


def _spec(name: str, ann: Any, param: Param) -> _Spec | None:
    """The spec of a parameter from its annotation (a string: the modules use
    ``from __future__ import annotations``), or None if ``parse`` does not read it."""
    if not isinstance(ann, str):
        return None
    text = ann.replace(" ", "")
    optional = False
    if text.startswith("Optional[") and text.endswith("]"):
        text, optional = text[9:-1], True
    elif text.endswith("|None"):
        text, optional = text[:-5], True
    multiple = False
    for prefix in ("List[", "list["):
        if text.startswith(prefix) and text.endswith("]"):
            text, multiple = text[len(prefix):-1], True
    if text not in _TYPES or (multiple and text not in ("str", "int")):
        return None
    convert = _TYPES[text]
    if convert is None and (param.argument or multiple or optional):
        return None
    return _Spec(name, param, convert, multiple, optional)


def _specs(func: Callable) -> tuple[str | None, list[_Spec]] | None:
    """(the context parameter's name, the other parameters' specs) of ``func``, or None."""
    code = func.__code__  # (no inspect: it would cost as much as a good part of typer)
    names = code.co_varnames[:code.co_argcount]
    defaults = func.__defaults__ or ()
    first_default = len(names) - len(defaults)
    ann = func.__annotations__
    ctx_name = None
    specs = []
    for i, name in enumerate(names):
        a = ann.get(name)
        if i < first_default:
            if a in ("Context", "params.Context") and ctx_name is None:
                ctx_name = name
                continue
            return None
        param = defaults[i - first_default]
        if not isinstance(param, Param):
            return None
        spec = _spec(name, a, param)
        if spec is None:
            return None
        specs.append(spec)
    if code.co_kwonlyargcount or code.co_flags & 0x0C:  # keyword-only, *args, **kwargs
        return None
    return ctx_name, specs


def _value(spec: _Spec, text: str) -> Any:
    """``text`` converted as click would, or raise ValueError for anything click might
    answer otherwise (a conversion error, a number outside min/max)."""
    convert = spec.convert
    if convert is None:
        raise ValueError("a flag takes no value")
    v = convert(text)
    kw = spec.param.kw
    lo, hi = kw.get("min"), kw.get("max")
    if (lo is not None and not v >= lo) or (hi is not None and not v <= hi):
        raise ValueError("out of range")
    return v


def parse(func: Callable, args: list[str]) -> tuple[str | None, dict[str, Any], dict[str, Source]] | None:
    """(the context parameter's name, the keyword arguments typer would call ``func``
    with, the source of each) for the command line ``args`` of command ``func``; None if
    ``parse`` cannot tell exactly what typer would do (then typer must answer)."""
    got = _specs(func)
    if got is None:
        return None
    ctx_name, specs = got
    opts: dict[str, tuple[_Spec, Any]] = {}  # option string -> (spec, flag value)
    positional_specs = []
    for s in specs:
        p = s.param
        if p.argument:
            positional_specs.append(s)
            continue
        if any(k not in ("help", "metavar", "min", "max") for k in p.kw):
            return None  # (callbacks, envvars, …: typer's)
        for decl in p.decls:
            primary, slash, secondary = decl.partition("/")
            if s.convert is None:
                if slash:
                    opts[primary] = (s, True)
                    opts[secondary] = (s, False)
                elif p.default is False:
                    opts[primary] = (s, True)
                else:
                    return None
            elif slash:
                return None
            else:
                opts[decl] = (s, None)
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    positional: list[str] = []
    i, n = 0, len(args)
    try:
        while i < n:
            a = args[i]
            i += 1
            if a[:1] != "-" or a == "-":
                positional.append(a)
                continue
            if a[:2] == "--":
                name, eq, text = a.partition("=")
                got_opt = opts.get(name)
                if got_opt is None:
                    return None
                spec, flag = got_opt
                if spec.convert is None:
                    if eq:
                        return None
                else:
                    if not eq:
                        if i >= n:
                            return None
                        text = args[i]
                        i += 1
            else:
                got_opt = opts.get(a[:2])
                if got_opt is None:
                    return None
                spec, flag = got_opt
                if spec.convert is None:
                    if len(a) > 2:
                        return None  # clustered short flags: typer's
                elif len(a) > 2:
                    text = a[2:]
                else:
                    if i >= n:
                        return None
                    text = args[i]
                    i += 1
            v = flag if spec.convert is None else _value(spec, text)
            if spec.multiple:
                values.setdefault(spec.name, []).append(v)
            else:
                values[spec.name] = v
            sources[spec.name] = COMMANDLINE
        for k, s in enumerate(positional_specs):
            if s.multiple:
                if k != len(positional_specs) - 1:
                    return None
                taken, positional = positional, []
                if not taken:
                    if s.param.default is _REQUIRED:
                        return None
                    continue
                values[s.name] = [_value(s, t) for t in taken]
            else:
                if not positional:
                    if s.param.default is _REQUIRED:
                        return None
                    continue
                values[s.name] = _value(s, positional.pop(0))
            sources[s.name] = COMMANDLINE
    except ValueError:
        return None
    if positional:
        return None  # more arguments than the command takes: typer's error
    for s in specs:
        if s.name in values:
            continue
        if s.param.default is _REQUIRED:
            return None
        values[s.name] = s.param.default if s.param.default is not None or not s.multiple \
            else None
        sources[s.name] = DEFAULT
    return ctx_name, values, sources
