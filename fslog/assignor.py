"""Partition assignment for a consumer group: balanced and sticky.

Every member runs ``assign`` on the same registry state under the group lock, so they
all agree. A partition stays with its previous owner while that member is alive,
subscribed to the topic and under its fair share; the rest go to the eligible member
with the fewest partitions (ties by member id). A partition moves only when it must.
"""

from __future__ import annotations

import math


def assign(members: dict[str, dict], partitions_of: dict[str, int]) -> dict[str, list[tuple[str, int]]]:
    """``members``: id -> {"topics": [...], "assigned": [[topic, p], ...]};
    ``partitions_of``: topic -> partition count. Returns id -> sorted [(topic, p)]."""
    ids = sorted(members)
    result: dict[str, list[tuple[str, int]]] = {m: [] for m in ids}
    if not ids:
        return result
    subs = {m: set(members[m].get("topics", [])) for m in ids}
    everything = [(t, p) for t in sorted(partitions_of) for p in range(partitions_of[t])
                  if any(t in subs[m] for m in ids)]
    share = {m: math.ceil(sum(partitions_of.get(t, 0) for t in subs[m]) /
                          max(1, sum(1 for o in ids if subs[o] & subs[m]))) for m in ids}
    previous = {}
    for m in ids:
        for t, p in members[m].get("assigned", []):
            previous[(t, p)] = m
    todo = []
    for tp in everything:
        m = previous.get(tp)
        if m is not None and tp[0] in subs[m] and len(result[m]) < share[m]:
            result[m].append(tp)
        else:
            todo.append(tp)
    for tp in todo:
        eligible = [m for m in ids if tp[0] in subs[m]]
        m = min(eligible, key=lambda x: (len(result[x]), x))
        result[m].append(tp)
    return {m: sorted(v) for m, v in result.items()}
