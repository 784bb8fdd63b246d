"""Loading ``kio`` (the Kafka protocol codec of ``broker/`` and ``replication/``) without
``hypothesis``.

kio's phantom types import ``hypothesis`` when it is installed (as in fslog's test
environment) and register a test-data strategy for every type it defines: about 0.7 s
of start-up for every ``fslog serve`` and ``fslog replicate`` process, for strategies
fslog never uses. ``load()`` imports kio's phantom-type module once with ``hypothesis``
hidden, so kio takes it as absent; ``hypothesis`` itself stays importable afterwards.
When ``hypothesis`` is already imported (a test process using it), kio is left to
register its strategies as usual.

Called by the ``broker`` and ``replication`` packages before any of their modules
imports kio. Import-time only; no state beyond ``sys.modules``.
"""

from __future__ import annotations

import sys

_PHANTOM = "kio.static._phantom"


def load() -> None:
    if _PHANTOM in sys.modules or "hypothesis" in sys.modules:
        return
    sys.modules["hypothesis"] = None  # type: ignore[assignment]  # "import hypothesis" fails
    try:
        __import__(_PHANTOM)
    except ImportError:
        pass  # kio not installed: the first real import of it says so
    finally:
        if sys.modules.get("hypothesis", False) is None:
            del sys.modules["hypothesis"]
