"""Owners by rendezvous hashing (rsigma.cluster.rendezvous) and the static ownership of one node."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from rsigma.cluster.ownership import Ownership, StaticOwnership
from rsigma.cluster.rendezvous import owned_by, owners

P = 64
MEMBERS = ["node-a", "node-b", "node-c"]


def test_every_partition_has_exactly_one_live_owner():
    result = owners(MEMBERS, P)
    assert sorted(result) == list(range(P))
    assert set(result.values()) <= set(MEMBERS)
    shares = [owned_by(m, MEMBERS, P) for m in MEMBERS]
    assert frozenset().union(*shares) == frozenset(range(P))
    assert sum(len(s) for s in shares) == P


def test_no_member_no_owner_and_a_stranger_owns_nothing():
    assert owners([], P) == {}
    assert owned_by("node-x", MEMBERS, P) == frozenset()


def test_owners_do_not_depend_on_member_order_or_duplicates():
    assert owners(MEMBERS, P) == owners(list(reversed(MEMBERS)) + MEMBERS, P)


def test_owners_are_the_same_in_another_process():
    """BLAKE2b, not Python's salted hash(): another interpreter (another PYTHONHASHSEED) agrees."""
    code = (
        "from rsigma.cluster.rendezvous import owners;"
        "print(sorted(owners(['node-a', 'node-b', 'node-c'], 64).items()))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        assert out.strip() == str(sorted(owners(MEMBERS, P).items()))


@pytest.mark.parametrize("leaving", MEMBERS)
def test_when_a_member_leaves_only_its_partitions_move(leaving):
    before = owners(MEMBERS, P)
    after = owners([m for m in MEMBERS if m != leaving], P)
    moved = {p for p in range(P) if before[p] != after[p]}
    assert moved == {p for p, owner in before.items() if owner == leaving}
    assert leaving not in after.values()


def test_a_joining_member_takes_about_its_share_and_only_from_others():
    members = [f"host-{i}-{1000 + i}" for i in range(3)]
    before = owners(members, P)
    after = owners([*members, "host-new-77"], P)
    moved = {p for p in range(P) if before[p] != after[p]}
    assert all(after[p] == "host-new-77" for p in moved)  # nothing moves between old members
    assert moved == owned_by("host-new-77", [*members, "host-new-77"], P)
    assert P / 4 / 2 <= len(moved) <= P / 4 * 2  # about P/4 (16) of 64


def test_every_member_gets_a_fair_share():
    """Over many member sets of 4, no member is left without partitions or owns half of them."""
    for trial in range(50):
        members = [f"n{trial}-{i}" for i in range(4)]
        sizes = [len(owned_by(m, members, P)) for m in members]
        assert min(sizes) > 0 and max(sizes) < P / 2, (members, sizes)


def test_static_ownership_owns_its_set_and_never_calls_back():
    calls = []

    async def record(gained: frozenset[int], lost: frozenset[int]) -> None:
        calls.append((gained, lost))

    static: Ownership = StaticOwnership([3, 1, 3])
    static.on_change(record)
    assert static.owned() == frozenset({1, 3})
    asyncio.run(asyncio.sleep(0))
    assert calls == []
