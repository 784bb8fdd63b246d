"""Loads ``kio`` (the Kafka protocol's message classes, used by fslog/broker and
fslog/replication) without the hypothesis strategies it registers when hypothesis is
installed.

kio's phantom types import ``hypothesis.strategies`` at import time when they can, to
register strategies for kio's own property tests; fslog never uses them, and in an
environment that has hypothesis (a developer's, or the test extras) that import doubled
the CPU of every ``fslog serve``, ``replicate`` and ``mirror`` start (about 0.25 s).
So the first import of kio here sees hypothesis as absent, as in a plain install. A
process that imported hypothesis already (a test run) keeps kio's hooks unchanged.

Imported for its effect by ``fslog.broker`` and ``fslog.replication`` before any kio
module; the interpreter's import lock makes concurrent first imports safe.
"""

from __future__ import annotations

import sys


def _load_without_hypothesis() -> None:
    if "kio.static._phantom" in sys.modules or "hypothesis" in sys.modules:
        return
    sys.modules["hypothesis"] = None  # type: ignore[assignment]  # import -> ImportError
    try:
        import kio.static._phantom  # noqa: F401
    finally:
        if "hypothesis" in sys.modules and sys.modules["hypothesis"] is None:
            del sys.modules["hypothesis"]


_load_without_hypothesis()
