"""Times on the command line: ISO-8601 (``2026-11-25T10:00:00Z``, ``2026-11-25``) or
relative to now (``90s``, ``30m``, ``1h``, ``2d``, ``1w``, ``500ms``), meaning that long ago.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .. import clock
from ..errors import UsageError

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_time_ms(text: str, now_ms: int | None = None) -> int:
    """Milliseconds since the epoch for an ISO-8601 or relative time."""
    if now_ms is None:
        now_ms = clock.now_ms()
    if text.strip() == "now":
        return now_ms
    m = _RELATIVE.match(text)
    if m:
        return now_ms - int(float(m.group(1)) * _UNITS_MS[m.group(2)])
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"cannot read the time {text!r}: use ISO-8601 (2026-11-25T10:00:00Z) or a relative "
            f"time such as 30m, 1h, 2d") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time, like date(1)
    return int(dt.astimezone(timezone.utc).timestamp() * 1000)
