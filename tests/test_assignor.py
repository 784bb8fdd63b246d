"""Unit tests of fslog.groups.assignor.assign: the consumer group's partition assignment.

Properties (Kafka's sticky assignor): every subscribed partition goes to exactly one
subscribed member; sizes differ by at most one in a single-topic group; the result does not
depend on dict or list order; when a member leaves only its partitions move; when a member
joins, partitions move only from members that have more than their share.
"""

from __future__ import annotations

import copy
import math
import random

import pytest

from fslog.groups.assignor import assign


# ---------------------------------------------------------------- helpers
def members_of(assigned: dict[str, list], topics: dict[str, list[str]] | list[str]) -> dict:
    """Registry-like member records: id -> {"topics", "assigned"} (assigned as JSON lists)."""
    out = {}
    for m, parts in assigned.items():
        subs = topics[m] if isinstance(topics, dict) else topics
        out[m] = {"topics": list(subs), "assigned": [[t, p] for t, p in parts],
                  "pid": 1234, "host": "h"}
    return out


def fresh(ids, topics, partitions_of):
    return assign({m: {"topics": list(topics if isinstance(topics, list) else topics[m])}
                   for m in ids}, partitions_of)


def check_valid(result, members, partitions_of):
    """Each partition of a subscribed topic assigned exactly once, to a subscriber."""
    assert set(result) == set(members)
    seen = {}
    for m, parts in result.items():
        assert parts == sorted(parts), f"{m}: not sorted: {parts}"
        for t, p in parts:
            assert isinstance(p, int)
            assert t in members[m].get("topics", []), f"{m} got {t}/{p} but is not subscribed"
            assert 0 <= p < partitions_of[t], f"{m} got {t}/{p}: no such partition"
            assert (t, p) not in seen, f"{t}/{p} assigned to {seen[(t, p)]} and {m}"
            seen[(t, p)] = m
    subscribed = {t for m in members.values() for t in m.get("topics", [])}
    expected = {(t, p) for t in subscribed if t in partitions_of for p in range(partitions_of[t])}
    assert set(seen) == expected, (f"missing {sorted(expected - set(seen))}, "
                                   f"extra {sorted(set(seen) - expected)}")


def sizes(result):
    return sorted(len(v) for v in result.values())


def check_balanced(result, total):
    s = sizes(result)
    if not s:
        return
    n = len(s)
    assert s[-1] - s[0] <= 1, f"unbalanced sizes {s}"
    assert s[0] == total // n and s[-1] == math.ceil(total / n), s


def as_sets(result):
    return {m: set(map(tuple, v)) for m, v in result.items()}


# ---------------------------------------------------------------- basics
def test_no_members():
    assert assign({}, {"t": 4}) == {}


def test_single_member_gets_everything():
    r = fresh(["a"], ["t"], {"t": 5})
    assert r == {"a": [("t", p) for p in range(5)]}


def test_topic_with_no_partitions():
    r = fresh(["a", "b"], ["t"], {"t": 0})
    assert r == {"a": [], "b": []}


@pytest.mark.parametrize("n", range(1, 9))
@pytest.mark.parametrize("parts", [0, 1, 2, 3, 5, 6, 7, 12, 13, 50])
def test_fresh_assignment_is_valid_and_balanced(n, parts):
    ids = [f"m{i}" for i in range(n)]
    members = {m: {"topics": ["t"]} for m in ids}
    r = assign(members, {"t": parts})
    check_valid(r, members, {"t": parts})
    check_balanced(r, parts)


def test_more_members_than_partitions():
    ids = [f"m{i}" for i in range(7)]
    members = {m: {"topics": ["t"]} for m in ids}
    r = assign(members, {"t": 3})
    check_valid(r, members, {"t": 3})
    assert sizes(r) == [0, 0, 0, 0, 1, 1, 1]


def test_returns_tuples_sorted_and_does_not_mutate_input():
    members = members_of({"b": [("t", 3), ("t", 0)], "a": [("t", 1)]}, ["t"])
    before = copy.deepcopy(members)
    r = assign(members, {"t": 4})
    assert members == before
    for parts in r.values():
        assert all(isinstance(tp, tuple) for tp in parts)
        assert parts == sorted(parts)


# ---------------------------------------------------------------- determinism
def _shuffled(members: dict, rng: random.Random) -> dict:
    items = list(members.items())
    rng.shuffle(items)
    out = {}
    for m, rec in items:
        rec = copy.deepcopy(rec)
        rng.shuffle(rec["assigned"])
        rng.shuffle(rec["topics"])
        out[m] = rec
    return out


def test_deterministic_whatever_the_order():
    rng = random.Random(7)
    for _trial in range(50):
        ids = [f"host-{rng.randrange(1000)}-{i}" for i in range(rng.randint(1, 6))]
        topics = ["a", "b", "c"]
        subs = {m: rng.sample(topics, rng.randint(1, 3)) for m in ids}
        counts = {t: rng.randint(0, 9) for t in topics}
        # some plausible previous assignment: a fresh one among a subset
        prev = fresh(ids[: max(1, len(ids) - 1)], {m: subs[m] for m in ids}, counts)
        members = members_of({m: prev.get(m, []) for m in ids}, subs)
        expected = assign(members, counts)
        for _ in range(5):
            assert assign(_shuffled(members, rng), dict(reversed(list(counts.items())))) == expected
        check_valid(expected, members, counts)


# ---------------------------------------------------------------- stickiness
@pytest.mark.parametrize("parts,n", [(6, 3), (6, 2), (7, 3), (12, 5), (3, 4), (10, 4), (1, 2)])
def test_leave_moves_only_the_leavers_partitions(parts, n):
    ids = [f"m{i}" for i in range(n)]
    before = fresh(ids, ["t"], {"t": parts})
    for leaver in ids:
        rest = {m: before[m] for m in ids if m != leaver}
        members = members_of(rest, ["t"])
        after = assign(members, {"t": parts})
        check_valid(after, members, {"t": parts})
        check_balanced(after, parts)
        for m in rest:
            assert set(before[m]) <= set(after[m]), f"{m} lost partitions when {leaver} left"
        moved = set().union(*(set(after[m]) - set(before[m]) for m in rest)) if rest else set()
        assert moved == set(before[leaver])


@pytest.mark.parametrize("parts,n", [(6, 3), (6, 2), (7, 2), (12, 5), (10, 3), (3, 3), (2, 1)])
def test_join_moves_partitions_only_from_overloaded_members(parts, n):
    """Existing members only ever lose partitions (never trade them among themselves), and
    a member keeps min(what it had, floor(P/n)) — only its surplus may go to the new one."""
    ids = [f"m{i}" for i in range(n)]
    before = fresh(ids, ["t"], {"t": parts})
    assigned = dict(before)
    assigned["zz-new"] = []
    members = members_of(assigned, ["t"])
    after = assign(members, {"t": parts})
    check_valid(after, members, {"t": parts})
    floor = parts // (n + 1)
    for m in ids:
        assert set(after[m]) <= set(before[m]), f"{m} gained or swapped partitions on a join"
        assert len(after[m]) >= min(len(before[m]), floor), f"{m} gave up more than its surplus"
    moved = set().union(*(set(before[m]) - set(after[m]) for m in ids))
    assert moved == set(after["zz-new"])


@pytest.mark.parametrize("parts,n", [(6, 3), (7, 2), (10, 3), (12, 4)])
def test_join_keeps_the_group_balanced(parts, n):
    ids = [f"m{i}" for i in range(n)]
    before = fresh(ids, ["t"], {"t": parts})
    assigned = dict(before)
    assigned["zz-new"] = []
    members = members_of(assigned, ["t"])
    after = assign(members, {"t": parts})
    check_valid(after, members, {"t": parts})
    check_balanced(after, parts)


def test_members_joining_one_by_one_share_the_partitions():
    assigned: dict[str, list] = {}
    for i in range(5):
        assigned[f"m{i}"] = []
        members = members_of(assigned, ["t"])
        assigned = assign(members, {"t": 6})
        check_valid(assigned, members, {"t": 6})
    assert sizes(assigned) == [1, 1, 1, 1, 2]


def test_unchanged_membership_changes_nothing():
    rng = random.Random(3)
    for _ in range(30):
        ids = [f"m{i}" for i in range(rng.randint(1, 6))]
        parts = rng.randint(0, 20)
        r1 = fresh(ids, ["t"], {"t": parts})
        r2 = assign(members_of(r1, ["t"]), {"t": parts})
        assert r2 == r1


def test_churn_invariants():
    """Random joins and leaves: always valid; leaves move only the leaver's partitions; on a
    join a member loses partitions only down to floor(P/n), and never trades them."""
    rng = random.Random(11)
    for trial in range(40):
        parts = rng.randint(1, 16)
        counts = {"t": parts}
        assigned: dict[str, list] = {}
        next_id = 0
        for step in range(25):
            if assigned and (rng.random() < 0.4 or len(assigned) > 7):
                leaver = rng.choice(sorted(assigned))
                rest = {m: v for m, v in assigned.items() if m != leaver}
                members = members_of(rest, ["t"])
                after = assign(members, counts)
                check_valid(after, members, counts)
                for m in rest:
                    assert set(assigned[m]) <= set(after[m]), (trial, step, m)
            else:
                new = f"m{next_id:03d}"
                next_id += 1
                members = members_of({**assigned, new: []}, ["t"])
                after = assign(members, counts)
                check_valid(after, members, counts)
                floor = parts // len(members)
                for m in assigned:
                    lost = set(assigned[m]) - set(after[m])
                    gained = set(after[m]) - set(assigned[m])
                    if lost:  # only a member above its share gives up, and only its surplus
                        assert not gained, (trial, step, m, "traded partitions on a join")
                        assert len(after[m]) >= floor, (trial, step, m, "gave up too much")
            assigned = after


def test_churn_stays_balanced():
    rng = random.Random(11)
    for _trial in range(40):
        parts = rng.randint(1, 16)
        assigned: dict[str, list] = {}
        next_id = 0
        for _step in range(25):
            if assigned and (rng.random() < 0.4 or len(assigned) > 7):
                leaver = rng.choice(sorted(assigned))
                assigned = {m: v for m, v in assigned.items() if m != leaver}
            else:
                assigned[f"m{next_id:03d}"] = []
                next_id += 1
            assigned = assign(members_of(assigned, ["t"]), {"t": parts})
            check_balanced(assigned, parts)


# ---------------------------------------------------------------- subscriptions
def test_members_only_get_their_topics():
    subs = {"a": ["x"], "b": ["x", "y"], "c": ["y"], "d": ["z"], "e": []}
    counts = {"x": 5, "y": 4, "z": 3, "unsubscribed": 6}
    members = {m: {"topics": t} for m, t in subs.items()}
    r = assign(members, counts)
    check_valid(r, members, counts)
    assert r["e"] == []
    assert r["d"] == [("z", p) for p in range(3)]
    assert all(t == "x" for t, _ in r["a"]) and all(t == "y" for t, _ in r["c"])
    assert not any(t == "unsubscribed" for v in r.values() for t, _ in v)


def test_topic_unknown_to_partitions_of_is_skipped():
    members = {"a": {"topics": ["x", "gone"]}, "b": {"topics": ["x"]}}
    r = assign(members, {"x": 4})
    check_valid(r, {"a": {"topics": ["x"]}, "b": {"topics": ["x"]}}, {"x": 4})


def test_same_multi_topic_subscription_is_balanced_overall():
    for n in range(1, 6):
        ids = [f"m{i}" for i in range(n)]
        counts = {"x": 3, "y": 5, "z": 1}
        members = {m: {"topics": ["x", "y", "z"]} for m in ids}
        r = assign(members, counts)
        check_valid(r, members, counts)
        check_balanced(r, 9)


def test_partition_moves_when_its_owner_unsubscribes():
    # b used to read y/0..1 but now only subscribes to x: y must go to a subscriber.
    members = members_of({"a": [("x", 0), ("y", 2)], "b": [("x", 1), ("y", 0), ("y", 1)]},
                         {"a": ["x", "y"], "b": ["x"]})
    counts = {"x": 2, "y": 3}
    r = assign(members, counts)
    check_valid(r, members, counts)
    assert {tp for tp in r["a"] if tp[0] == "y"} == {("y", 0), ("y", 1), ("y", 2)}


def test_stale_previous_assignment_is_ignored():
    # previous assignment names partitions that no longer exist and a deleted topic
    members = members_of({"a": [("t", 0), ("t", 9), ("old", 0)], "b": [("t", 1)]}, ["t"])
    r = assign(members, {"t": 3})
    check_valid(r, members, {"t": 3})
    assert ("t", 0) in r["a"] and ("t", 1) in r["b"]


def test_conflicting_previous_claims_still_assign_each_partition_once():
    # e.g. a registry rebuilt by hand: two members claim the same partitions
    members = members_of({"a": [("t", 0), ("t", 1)], "b": [("t", 0), ("t", 1)], "c": []}, ["t"])
    r = assign(members, {"t": 3})
    check_valid(r, members, {"t": 3})
    check_balanced(r, 3)
