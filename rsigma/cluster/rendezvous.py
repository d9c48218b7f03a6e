"""Owners of partitions by rendezvous (highest random weight) hashing over the live members.

Each partition goes to the member with the highest BLAKE2b weight of (member id, partition). Every
node computes the same owners from the same member list, with no coordination, and a change of
membership moves as little as possible: when a member leaves, only its partitions move (each to the
member with the next highest weight); when one joins, it takes the partitions where it now weighs
most, about P/n of them, each from its previous owner. Python's `hash()` is salted per process, so
it is never used here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["owned_by", "owners", "weight"]


def weight(member: str, partition: int) -> int:
    """The stable weight of a member for a partition (64 bits of BLAKE2b)."""
    data = f"{partition}\x00{member}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def owners(members: Iterable[str], partitions: int) -> dict[int, str]:
    """The owner of each partition 0 .. partitions-1; empty when there is no member.

    Ties (astronomically unlikely) go to the greatest member id, so the result never depends on the
    order of `members`.
    """
    live = sorted(set(members))
    if not live:
        return {}
    return {p: max(live, key=lambda m, p=p: (weight(m, p), m)) for p in range(partitions)}


def owned_by(member: str, members: Iterable[str], partitions: int) -> frozenset[int]:
    """The partitions `member` owns among `members` (empty if it is not one of them)."""
    return frozenset(p for p, owner in owners(members, partitions).items() if owner == member)
