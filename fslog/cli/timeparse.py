"""Times on the command line: ISO-8601 (``2026-11-25T10:00:00Z``, ``2026-11-25``) or
relative to now (``90s``, ``30m``, ``1h``, ``2d``, ``1w``, ``500ms``), meaning that long ago.
"""

from __future__ import annotations

import re

from .. import clock
from ..errors import UsageError

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
# 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in milliseconds since the epoch
_EARLIEST_MS = -62_135_596_800_000
_LATEST_MS = 253_402_300_799_999
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_time_ms(text: str, now_ms: int | None = None) -> int:
    """Milliseconds since the epoch for an ISO-8601 or relative time."""
    if now_ms is None:
        now_ms = clock.now_ms()
    if text.strip() == "now":
        return now_ms
    m = _RELATIVE.match(text)
    dt = None
    from datetime import datetime, timezone  # (here: datetime costs every start of consume)
    if not m:
        try:
            dt = datetime.fromisoformat(text.strip())
        except ValueError:
            raise UsageError(
                f"cannot read the time {text!r}: use ISO-8601 (2026-11-25T10:00:00Z) or a "
                f"relative time such as 30m, 1h, 2d") from None
    try:
        if dt is None:
            assert m is not None  # relative: matched above
            ms = now_ms - int(float(m.group(1)) * _UNITS_MS[m.group(2)])
        else:
            if dt.tzinfo is None:
                dt = dt.astimezone()  # local time, like date(1)
            ms = int(dt.astimezone(timezone.utc).timestamp() * 1000)
    except (ValueError, OverflowError, OSError):
        ms = None
    if ms is None or not _EARLIEST_MS <= ms <= _LATEST_MS:
        # a time that, in UTC or local time, falls outside years 1..9999 (or a relative
        # time reaching before them): Python's datetime cannot hold it, nor does any record
        raise UsageError(f"the time {text!r} is out of range: give one between "
                         f"0001-01-02 and 9999-12-30 (UTC)")
    return ms
