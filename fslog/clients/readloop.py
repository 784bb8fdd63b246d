"""The read loop shared by ``fslog consume`` and ``fslog consume --exec``: fetch from a
consumer (``consumer.py``), hand the batches to a sink, let the consumer commit what the
sink has delivered, and either stop once caught up or, following, wait for appends
(``storage/follow.py``) until stopped or idle.

The sink decides what delivering means: ``fslog consume`` writes records to stdout
(``cli/consume.py``), the executor runs a command per record (``executor.py``). It reports
delivered offsets to the consumer itself (``source.delivered``). One thread runs the
loop; the consumer and the sink are used from that thread only.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ..storage.follow import AppendWaiter


class Sink:
    """What the loop hands batches to. The defaults fit a sink that delivers each batch
    at once (``take`` returns with it written)."""

    want: Callable[[str, int], bool] | None = None  # partitions to fetch from this time

    def take(self, batches: list) -> None:
        """Deliver (or queue) fetched ``(topic, FetchedBatch, stop)`` tuples."""
        raise NotImplementedError

    def step(self) -> None:
        """After every fetch, with or without batches: start queued work."""

    def stopping(self) -> bool:
        """Stop now (a signal, a failure)."""
        return False

    def finished(self) -> bool:
        """Read nothing more (a record limit reached)."""
        return False

    def busy(self) -> bool:
        """Work in progress: records taken whose delivery is not finished."""
        return False

    def queued(self) -> bool:
        """Records taken and not started yet."""
        return False

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` for work in progress (or just wait)."""
        time.sleep(timeout)

    def wait(self, waiter: AppendWaiter, timeout: float | None) -> None:
        """Following and idle: wait for an append (``timeout`` None: no bound)."""
        waiter.wait(timeout)


class ReadLoop:
    def __init__(self, source: Any, sink: Sink, *, follow: bool, idle_timeout: float | None,
                 on_warning: Callable[[str], None]):
        self.source = source
        self.sink = sink
        self.follow = follow
        self.idle_timeout = idle_timeout
        self.on_warning = on_warning

    def _warn(self) -> None:
        ws = getattr(self.source, "warnings", None)
        if ws:
            for w in ws:
                self.on_warning(w)
            ws.clear()

    def run(self) -> None:
        """Until caught up (not following), idle for ``idle_timeout``, finished or
        stopped."""
        src, sink = self.source, self.sink
        last_data = time.monotonic()
        waiter: AppendWaiter | None = None
        try:
            self._warn()
            while True:
                sink.poll(0)
                if sink.stopping():
                    return
                finished = sink.finished()
                got = False
                if not finished:
                    batches = src.fetch(want=sink.want)
                    self._warn()
                    if batches:
                        sink.take(batches)
                        last_data = time.monotonic()
                        got = True
                    sink.step()
                src.after_write()
                src.maybe_commit()
                if sink.stopping():
                    continue
                busy = sink.busy()
                if finished and not busy:
                    return
                if got and not busy:
                    continue  # more may be there already
                if not busy and not sink.queued():
                    if not self.follow and src.caught_up():
                        return
                    if self.follow and self.idle_timeout is not None and \
                            time.monotonic() - last_data >= self.idle_timeout:
                        return
                if busy:
                    sink.poll(0.05)
                elif not self.follow:
                    sink.poll(0.05 if src.pending() else 0.01)
                elif waiter is None:
                    waiter = AppendWaiter(src.watch_paths())
                    # re-check once the watches are in place
                else:
                    timeout = 0.05 if src.pending() else src.poll_interval
                    if self.idle_timeout is not None:
                        left = max(0.0, self.idle_timeout - (time.monotonic() - last_data))
                        timeout = left if timeout is None else min(timeout, left)
                    sink.wait(waiter, timeout)
        finally:
            if waiter is not None:
                waiter.close()
