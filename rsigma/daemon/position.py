"""The contiguous ack floor: the source position that a state snapshot may safely claim.

Messages finish out of order (sinks batch, a failed one waits for redelivery), so the highest
acknowledged sequence says nothing about the ones below it. The floor is the highest sequence such
that every message this process received at or below it is done. A snapshot saved with the floor
never claims an event that could still be redelivered; the state-restore decision relies on that.

Sequences are those of the messages this process saw: with a subject filter or a consumer group the
stream has gaps, which do not hold the floor back.
"""

from __future__ import annotations

import heapq

from rsigma.daemon.state import Position


class AckFloor:
    """O(log n) per message: a heap of open sequences and a heap of finished ones above the floor.

    A message nakked for redelivery simply stays open until a later copy finishes it.
    """

    __slots__ = ("_done", "_open", "_open_heap", "floor")

    def __init__(self) -> None:
        self._open: dict[int, int] = {}  # received, not finished: sequence -> stream timestamp (ns)
        self._open_heap: list[int] = []  # the same sequences, lazily pruned
        self._done: list[tuple[int, int]] = []  # finished above the floor: (sequence, timestamp)
        self.floor: Position | None = None

    def received(self, sequence: int, timestamp_ns: int) -> None:
        if sequence not in self._open:
            self._open[sequence] = timestamp_ns
            heapq.heappush(self._open_heap, sequence)

    def finished(self, sequence: int) -> None:
        """The message is done (acked, or dead-lettered and acked); any copy finishing it suffices."""
        timestamp = self._open.pop(sequence, None)
        if timestamp is None:
            return
        open_heap = self._open_heap
        if open_heap[0] == sequence and not self._done:
            # The common case, acks in order: the lowest open message finished and nothing waits.
            heapq.heappop(open_heap)
            if self.floor is None or sequence > (self.floor.sequence or 0):
                self.floor = Position(sequence, timestamp)
            return
        heapq.heappush(self._done, (sequence, timestamp))
        self._advance()

    def _advance(self) -> None:
        open_heap = self._open_heap
        while open_heap and open_heap[0] not in self._open:
            heapq.heappop(open_heap)  # finished since it was pushed
        lowest_open = open_heap[0] if open_heap else None
        done = self._done
        while done and (lowest_open is None or done[0][0] < lowest_open):
            sequence, timestamp = heapq.heappop(done)
            if self.floor is None or sequence > (self.floor.sequence or 0):
                self.floor = Position(sequence, timestamp)

    @property
    def open_count(self) -> int:
        return len(self._open)
