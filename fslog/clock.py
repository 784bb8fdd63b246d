"""The wall clock in milliseconds since the epoch: Kafka's timestamps, retention ages,
heartbeats and commit times all use it. Pure function; any thread."""

from __future__ import annotations

import time

_time = time.time  # bound once: the producer calls now_ms per record


def now_ms() -> int:
    return int(_time() * 1000)
