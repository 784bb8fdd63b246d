"""Partition assignment for a consumer group: balanced and sticky.

Every member runs ``assign`` on the same registry state under the group lock, so they
all agree. Each member's quota is floor(P/M) partitions, one more for P mod M of them
(those that had more before, so fewer partitions move). A member keeps up to its quota
of the partitions it had, if it is still subscribed to their topics; everything else goes
to the eligible member furthest below its quota (ties: fewest partitions, then member
id). A partition moves only when it must.
"""

from __future__ import annotations


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
    valid = set(everything)
    previous: dict[str, list[tuple[str, int]]] = {m: [] for m in ids}
    claimed: set[tuple[str, int]] = set()
    for m in ids:
        for t, p in sorted(tuple(x) for x in members[m].get("assigned", [])):
            tp = (t, int(p))
            if tp in valid and t in subs[m] and tp not in claimed:
                previous[m].append(tp)
                claimed.add(tp)
    base, extra = divmod(len(everything), len(ids))
    by_previous = sorted(ids, key=lambda m: (-len(previous[m]), m))
    quota = {m: base + (1 if i < extra else 0) for i, m in enumerate(by_previous)}
    kept: set[tuple[str, int]] = set()
    for m in ids:
        for tp in previous[m][:quota[m]]:
            result[m].append(tp)
            kept.add(tp)
    for tp in everything:
        if tp in kept:
            continue
        eligible = [m for m in ids if tp[0] in subs[m]]
        m = min(eligible, key=lambda x: (len(result[x]) >= quota[x], len(result[x]) - quota[x], x))
        result[m].append(tp)
    return {m: sorted(v) for m, v in result.items()}
