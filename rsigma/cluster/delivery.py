"""Delivered floors: per partition, the source sequence up to which every result was confirmed by the sinks.

Pure and synchronous. Each apply round that releases hits opens a `Round` with the partitions it
released and the ack floor it applied them up to, and counts the results it handed to the sinks.
A result's delivery (every sink done with it) calls `Round.delivered()`. Rounds settle in the order
they were opened: a round's floors count only once it and every earlier round are fully delivered,
so a floor never claims a result still on its way. A new owner of a partition applies the hits at or
below the floor silently (docs/cluster.md, "Partition moves").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

__all__ = ["DeliveryRounds", "Round"]


class Round:
    """One apply round's floors, settled once its `pending` results are delivered."""

    __slots__ = ("floors", "pending", "_settle")

    def __init__(self, floors: Mapping[int, int], pending: int, settle: Callable[[], None]) -> None:
        self.floors = dict(floors)
        self.pending = pending
        self._settle = settle

    def delivered(self) -> None:
        """One of the round's results was delivered (or could not be written and was logged)."""
        self.pending -= 1
        if self.pending == 0:
            self._settle()


class DeliveryRounds:
    """Rounds in flight, the floors they confirmed, and those not yet written to the KV bucket."""

    def __init__(self, on_confirmed: Callable[[], None] = lambda: None) -> None:
        self.confirmed: dict[int, int] = {}  # partition -> delivered floor, as known here
        self.unwritten: dict[int, int] = {}
        self._rounds: deque[Round] = deque()
        self._on_confirmed = on_confirmed

    @property
    def in_flight(self) -> int:
        return len(self._rounds)

    def open(self, floors: Mapping[int, int], results: int) -> Round:
        """A round that released `floors` (partition -> ack floor applied) with `results` to deliver."""
        round_ = Round(floors, results, self._settle)
        self._rounds.append(round_)
        if results == 0:
            self._settle()
        return round_

    def known(self, partition: int, floor: int) -> None:
        """A floor read from the bucket (a gained partition): later rounds only raise it."""
        if floor > self.confirmed.get(partition, 0):
            self.confirmed[partition] = floor

    def take_unwritten(self) -> dict[int, int]:
        out, self.unwritten = self.unwritten, {}
        return out

    def not_written(self, floors: Mapping[int, int]) -> None:
        """Floors whose write failed: written again with the next ones (the higher of both)."""
        for p, floor in floors.items():
            if floor > self.unwritten.get(p, 0):
                self.unwritten[p] = floor

    def _settle(self) -> None:
        rounds = self._rounds
        confirmed = False
        while rounds and rounds[0].pending <= 0:
            for p, floor in rounds.popleft().floors.items():
                if floor > self.confirmed.get(p, 0):
                    self.confirmed[p] = floor
                    self.unwritten[p] = floor
                    confirmed = True
        if confirmed:
            self._on_confirmed()
