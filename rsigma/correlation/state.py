"""The window of one (correlation, group): entries sorted by event time, aggregates kept incrementally.

A window holds the hits of the last `timespan` seconds before its newest hit, both ends inclusive.
Entries arrive mostly in order; a late entry is inserted at its place, and one older than the window
(newest - timespan) is refused. Aggregates (distinct-value counts, sums, sorted values) are updated on
insert and eviction, so checking a condition never rescans the window.

A window of a correlation that includes events (`rsigma.correlation.evidence`) also keeps the evidence
of its most recent events, `(time, evidence)` sorted by time; it leaves with the entries it came with.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Hashable
from typing import Any


class GroupState:
    """Parallel lists `times` and `values`; which aggregate is maintained depends on the type."""

    __slots__ = ("times", "values", "counts", "ordered", "newest", "last_alert", "kept")

    def __init__(self, kind: str, keeps: bool = False) -> None:
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
        #: The evidence of the most recent events (None: the correlation keeps none).
        self.kept: list[tuple[float, Any]] | None = [] if keeps else None

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
            if self.kept:
                self._forget_before(self.newest - timespan)

    def trim(self, max_entries: int) -> int:
        """Drop the oldest entries beyond `max_entries` (`--max-group-entries`); how many went."""
        excess = len(self.times) - max_entries
        if excess <= 0:
            return 0
        for value in self.values[:excess]:
            self._account(value, -1)
        del self.times[:excess]
        del self.values[:excess]
        if self.kept:
            self._forget_before(self.times[0])
        return excess

    def keep(self, ts: float, evidence: Any, cap: int) -> None:
        """Remember an event's evidence; past `cap` the oldest goes. An event whose entry has already
        left the window (older than every entry) is not kept."""
        kept = self.kept
        if kept is None or not self.times or ts < self.times[0]:
            return
        if not kept or ts >= kept[-1][0]:
            kept.append((ts, evidence))
        else:
            kept.insert(bisect_right(kept, ts, key=_time), (ts, evidence))
        if len(kept) > cap:
            del kept[: len(kept) - cap]

    def _forget_before(self, cutoff: float) -> None:
        assert self.kept is not None
        cut = bisect_left(self.kept, cutoff, key=_time)
        if cut:
            del self.kept[:cut]

    def clear(self) -> None:
        self.times.clear()
        self.values.clear()
        if self.kept is not None:
            self.kept.clear()
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


def _time(item: tuple[float, Any]) -> float:
    return item[0]
