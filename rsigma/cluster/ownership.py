"""Which partitions of the correlation windows this node owns, and when that changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

__all__ = ["Ownership", "OwnershipCallback", "StaticOwnership"]

OwnershipCallback = Callable[[frozenset[int], frozenset[int]], Awaitable[None]]


class Ownership(Protocol):
    """The partitions this node applies hits for; the daemon asks nothing else of membership."""

    def owned(self) -> frozenset[int]: ...

    def on_change(self, callback: OwnershipCallback) -> None:
        """callback(gained, lost) after each rebalance, in order."""


class StaticOwnership:
    """A fixed set of partitions, never rebalanced: one node tested alone, without a KV bucket."""

    def __init__(self, partitions: Iterable[int]) -> None:
        self._owned = frozenset(partitions)

    def owned(self) -> frozenset[int]:
        return self._owned

    def on_change(self, callback: OwnershipCallback) -> None:
        """Ownership never changes, so the callback is never called."""
