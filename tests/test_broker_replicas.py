"""The leader's follower table (fslog/broker/replicas.py): in sync, high watermark,
acks=all waiting for followers, NOT_ENOUGH_REPLICAS."""

from __future__ import annotations

import asyncio

from fslog.broker.replicas import Replicas


class Clock:
    def __init__(self):
        self.t = 1_000_000

    def __call__(self):
        return self.t


def test_in_sync_and_high_watermark_follow_the_followers_fetches():
    c = Clock()
    r = Replicas(lag_time_max_ms=30_000, clock=c)
    assert r.isr_size("t", 0) == 1 and r.high_watermark("t", 0, 100) == 100
    r.note_fetch("t", 0, 1, 100, 100)        # caught up
    r.note_fetch("t", 0, 2, 100, 100)
    assert r.isr_size("t", 0) == 3
    r.note_fetch("t", 0, 1, 140, 150)        # behind, but caught up 0 ms ago
    assert r.high_watermark("t", 0, 150) == 100  # follower 2 still at 100
    c.t += 31_000                            # follower 2 silent, follower 1 never caught up again
    r.note_fetch("t", 0, 1, 150, 160)
    assert r.isr_size("t", 0) == 1 and r.high_watermark("t", 0, 160) == 160
    r.note_fetch("t", 0, 1, 160, 160)
    assert r.isr_size("t", 0) == 2 and r.high_watermark("t", 0, 170) == 160
    snap = {s["replica_id"]: s for s in r.snapshot({("t", 0): 170})}
    assert snap[1]["lag_records"] == 10 and snap[1]["in_sync"] and not snap[2]["in_sync"]
    assert r.enough("t", 0, 2) and not r.enough("t", 0, 3)


def test_acks_all_waits_for_every_in_sync_follower():
    async def main():
        c = Clock()
        r = Replicas(clock=c)
        r.note_fetch("t", 0, 1, 10, 10)
        r.note_fetch("t", 0, 2, 10, 10)
        waiting = asyncio.ensure_future(r.wait_replicated("t", 0, 15, 2, timeout=30))
        await asyncio.sleep(0.01)
        r.note_fetch("t", 0, 1, 15, 15)
        await asyncio.sleep(0.01)
        assert not waiting.done()            # follower 2 is in sync and not there yet
        r.note_fetch("t", 0, 2, 15, 15)
        assert await asyncio.wait_for(waiting, 10) is None
        assert await r.wait_replicated("t", 0, 99, 2, timeout=0.05) == "request_timed_out"
        c.t += 60_000                        # both fall out of sync
        assert await r.wait_replicated("t", 0, 99, 2, timeout=5) == \
            "not_enough_replicas_after_append"
        assert await r.wait_replicated("t", 0, 99, 1, timeout=5) is None  # the leader alone
    asyncio.run(main())
