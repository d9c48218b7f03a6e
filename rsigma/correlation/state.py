"""The window of one (correlation, group): entries sorted by event time, aggregates kept incrementally.

A window holds the hits of the last `timespan` seconds before its newest hit, both ends inclusive.
Entries arrive mostly in order; a late entry is inserted at its place, and one older than the window
(newest - timespan) is refused. Aggregates (distinct-value counts, sums, sorted values) are updated on
insert and eviction, so checking a condition never rescans the window.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Hashable
from typing import Any


class GroupState:
    """Parallel lists `times` and `values`; which aggregate is maintained depends on the type."""

    __slots__ = ("times", "values", "counts", "ordered", "newest", "last_alert")

    def __init__(self, kind: str) -> None:
        self.times: list[float] = []
        self.values: list[Any] = []
        # value -> multiplicity (value_count, temporal types); sorted numbers (percentiles). Sums are
        # not kept running: float rounding would make them depend on the order of arrival.
        self.counts: dict[Hashable, int] | None = (
            {} if kind in ("value_count", "temporal", "temporal_ordered") else None
        )
        self.ordered: list[float] | None = [] if kind in ("value_percentile", "value_median") else None
        self.newest = float("-inf")
        self.last_alert: float | None = None

    def __len__(self) -> int:
        return len(self.times)

    def add(self, ts: float, value: Any, timespan: float) -> bool:
        """Insert a hit; False when it is older than the window (a late event, not counted)."""
        if ts < self.newest - timespan:
            return False
        if ts >= self.newest:
            self.newest = ts
            self.times.append(ts)
            self.values.append(value)
            self.evict(timespan)
        else:
            at = bisect_right(self.times, ts)
            self.times.insert(at, ts)
            self.values.insert(at, value)
        self._account(value, +1)
        return True

    def evict(self, timespan: float) -> None:
        """Drop entries older than `newest - timespan`."""
        cut = bisect_left(self.times, self.newest - timespan)
        if cut:
            for value in self.values[:cut]:
                self._account(value, -1)
            del self.times[:cut]
            del self.values[:cut]

    def clear(self) -> None:
        self.times.clear()
        self.values.clear()
        if self.counts is not None:
            self.counts.clear()
        if self.ordered is not None:
            self.ordered.clear()

    def _account(self, value: Any, sign: int) -> None:
        if self.counts is not None:
            n = self.counts.get(value, 0) + sign
            if n:
                self.counts[value] = n
            else:
                del self.counts[value]
        elif value is not None and self.ordered is not None:
            if sign > 0:
                insort(self.ordered, value)
            else:
                del self.ordered[bisect_left(self.ordered, value)]

    def rebuild(self) -> None:
        """Recompute the aggregates from the entries (after a snapshot import)."""
        values = list(self.values)
        if self.counts is not None:
            self.counts.clear()
        if self.ordered is not None:
            self.ordered.clear()
        for value in values:
            self._account(value, +1)
