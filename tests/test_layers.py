"""The package layering: imports only point down, and no module graph cycle.

records <- storage <- groups <- clients <- (log.py, monitor.py) <- broker, replication <- cli;
errors.py and config.py sit below everything. Every import counts, including one inside a
function: a deferred import must not hide an upward arrow or a cycle.
"""

from __future__ import annotations

import ast
import os

import fslog

PKG = os.path.dirname(fslog.__file__)

# rank of each top-level part of the package: a module may import only ranks <= its own
# (and, within its own package, must not form a cycle)
RANKS = {
    "errors": 0, "config": 0, "clock": 0, "kio_import": 0, "__init__": 99,
    "records": 1, "storage": 2, "groups": 3, "clients": 4,
    "log": 5, "reports": 5, "monitor": 5,
    "broker": 6, "replication": 6,
    "cli": 7,
}


def _modules() -> dict[str, str]:
    out = {}
    for d, _dirs, names in os.walk(PKG):
        for n in names:
            if n.endswith(".py"):
                path = os.path.join(d, n)
                rel = os.path.relpath(path, os.path.dirname(PKG))[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: str, modules: dict[str, str]) -> set[str]:
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    is_pkg = path.endswith("__init__.py")
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base[:len(base) - node.level + 1]
                mod = ".".join(parts + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            if t in modules and t != name:
                found.add(t)
    return found


def _rank(module: str) -> int:
    parts = module.split(".")
    return RANKS[parts[1]] if len(parts) > 1 else RANKS["__init__"]


def _graph() -> dict[str, set[str]]:
    """module -> modules it imports. Package ``__init__`` modules only re-export: an edge
    into one is left out (its own imports are edges of the package module)."""
    modules = _modules()
    return {m: {t for t in _imports(m, p, modules) if not modules[t].endswith("__init__.py")}
            for m, p in modules.items()}


def test_every_part_has_a_rank():
    unknown = {m.split(".")[1] for m in _modules() if m != "fslog"} - set(RANKS)
    assert not unknown, f"add {sorted(unknown)} to RANKS in {__file__}"


def test_imports_only_point_down():
    up = [f"{m} imports {t}" for m, ts in _graph().items() for t in sorted(ts)
          if _rank(t) > _rank(m) and t.split(".")[:2] != m.split(".")[:2]]
    assert not up, "\n".join(up)


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(cycles)
