"""Helpers shared by the command modules."""

from __future__ import annotations

import typer


def open_log(ctx: typer.Context):
    from ..log import Log
    root = (ctx.obj or {}).get("root") if ctx is not None else None
    return Log(root)
