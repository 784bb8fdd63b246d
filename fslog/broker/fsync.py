"""Durability for Produce: one fsync shared by every producer waiting on a partition.

acks=all (-1): the response waits for ``durable(topic, partition)``, which resolves once
an fsync that started after the append has finished. While one fsync runs, later
waiters queue up and share the next one (group commit), so many producers cost one fsync
per round, not one each. acks=1 and acks=0: ``schedule`` makes sure the partition is
fsynced within the topic's ``flush.ms`` (default 1000) of the append.

Runs on the event loop; the fsync itself on a worker thread (``BrokerStorage.sync``).
"""

from __future__ import annotations

import asyncio


class _State:
    __slots__ = ("waiters", "task")

    def __init__(self):
        self.waiters: list[asyncio.Future] = []
        self.task: asyncio.Task | None = None


class GroupSync:
    def __init__(self, server):
        self.server = server
        self._states: dict[tuple[str, int], _State] = {}
        self._scheduled: dict[tuple[str, int], asyncio.TimerHandle] = {}

    def durable(self, topic: str, partition: int) -> asyncio.Future:
        """A future resolved when what was appended to the partition so far is fsynced
        (its exception, an OSError/FslogError, if the fsync failed)."""
        key = (topic, partition)
        st = self._states.get(key)
        if st is None:
            st = self._states[key] = _State()
        fut = self.server.loop.create_future()
        st.waiters.append(fut)
        if st.task is None:
            st.task = asyncio.ensure_future(self._run(key, st))
        return fut

    async def _run(self, key, st: _State) -> None:
        try:
            while st.waiters:
                round_, st.waiters = st.waiters, []
                try:
                    await self.server.run_blocking(self.server.storage.sync, *key)
                except Exception as e:
                    for f in round_:
                        if not f.done():
                            f.set_exception(e)
                    continue
                for f in round_:
                    if not f.done():
                        f.set_result(None)
        finally:
            st.task = None

    def schedule(self, topic: str, partition: int, flush_ms: int) -> None:
        key = (topic, partition)
        if key in self._scheduled:
            return
        self._scheduled[key] = self.server.loop.call_later(
            flush_ms / 1000, self._flush_now, key)

    def _flush_now(self, key) -> None:
        self._scheduled.pop(key, None)
        fut = self.durable(*key)
        fut.add_done_callback(self._report)

    def _report(self, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self.server.logger.error("serve: fsync failed: %s", fut.exception())

    async def drain(self) -> None:
        """Run every scheduled fsync now and wait for all of them (shutdown)."""
        for key, handle in list(self._scheduled.items()):
            handle.cancel()
            self._flush_now(key)
        pending = [f for st in self._states.values() for f in st.waiters]
        tasks = [st.task for st in self._states.values() if st.task is not None]
        if pending or tasks:
            await asyncio.gather(*pending, *tasks, return_exceptions=True)
