"""Helpers shared by the command modules."""

from __future__ import annotations

from .params import Context


def open_log(ctx: Context, topics=(), groups=()):
    """Validate the names a command was given, then open the root (creating it on first
    use). Names come first so that a refused name touches no file at all."""
    from ..storage.files import validate_name
    for t in topics:
        validate_name(t, "topic")
    for g in groups:
        validate_name(g, "group")
    from ..log import Log
    root = (ctx.obj or {}).get("root") if ctx is not None else None
    return Log(root)
