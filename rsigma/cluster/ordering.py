"""Exact order: hit messages held until the input's ack floor passes them, then released in source order.

Pure and synchronous. Each owned partition keeps the messages that arrived and are not yet applied.
`ready(floor)` releases those with source sequence <= floor, in (source sequence, hit index) order
(a message's hits keep their order), and raises the partition's *applied floor* to `floor`.

Why this is exact (docs/cluster.md, "Exact order"): the caller passes as `floor` the input consumer's
ack floor F, read *before* the hits stream's last sequence L, and calls `ready` only once it has
received every hits message up to L. Every source message <= F was acked, and a source message is
acked only after its hit messages were stored, so they are all <= L: nothing at or below F can still
arrive. A message that does arrive later at or below the applied floor is therefore a copy (a source
event redelivered after its duplicate window): it is dropped and counted, as is a second copy of a
sequence still waiting.

A partition this node gains is rebuilt from the start of the hits stream (`HitApplier` replays its
subject into a buffer marked `replaying`); until that replay has delivered every message the live
consumer had passed when the partition was gained, the buffer releases nothing, so no live hit is
applied before an older one the replay still has to bring.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from rsigma.cluster.hits import HitMessage

__all__ = ["HitOrdering", "PartitionBuffer"]


class PartitionBuffer:
    """One partition's messages waiting for the ack floor."""

    __slots__ = ("applied", "delivered", "duplicates", "replaying", "_heap", "_waiting")

    def __init__(self, applied: int = 0, *, replaying: bool = False) -> None:
        #: Every source sequence at or below it was released (or was before this node owned it).
        self.applied = applied
        #: The delivered floor read when the partition was gained: the results of its hits at or
        #: below it were delivered by an earlier owner, so applying them here rebuilds windows only.
        self.delivered = 0
        self.duplicates = 0
        #: The partition's past is still being read from the hits stream: nothing is released.
        self.replaying = replaying
        self._heap: list[int] = []
        #: source sequence -> (message, the hits-stream sequence it was stored at; 0: unknown)
        self._waiting: dict[int, tuple[HitMessage, int]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, message: HitMessage, stored_at: int = 0) -> bool:
        """Keep a message (stored at hits-stream sequence `stored_at`) until its floor; False (counted)
        for a duplicate."""
        sequence = message.sequence
        if sequence <= self.applied or sequence in self._waiting:
            self.duplicates += 1
            return False
        self._waiting[sequence] = (message, stored_at)
        heapq.heappush(self._heap, sequence)
        return True

    def first_stored_at(self) -> int | None:
        """The lowest hits-stream sequence of a waiting message (None: none waits)."""
        return min((stored_at for _, stored_at in self._waiting.values()), default=None)

    def restore(self, applied: int) -> None:
        """The partition's windows came from a snapshot reflecting every hit up to `applied`: messages
        at or below it are dropped (not counted as duplicates), and so is any that comes later."""
        self.applied = max(self.applied, applied)
        for sequence in [s for s in self._waiting if s <= self.applied]:
            del self._waiting[sequence]
        self._heap = list(self._waiting)
        heapq.heapify(self._heap)

    def ready(self, floor: int) -> list[HitMessage]:
        """The waiting messages with source sequence <= floor, in sequence order; the applied floor
        becomes `floor` (it never goes down)."""
        out: list[HitMessage] = []
        heap = self._heap
        while heap and heap[0] <= floor:
            out.append(self._waiting.pop(heapq.heappop(heap))[0])
        if floor > self.applied:
            self.applied = floor
        return out


class HitOrdering:
    """The buffers of the partitions this node owns; messages of other partitions are not kept."""

    def __init__(self, partitions: Iterable[int], applied: int = 0) -> None:
        self.buffers: dict[int, PartitionBuffer] = {p: PartitionBuffer(applied) for p in partitions}
        self.unowned = 0  # messages of partitions owned elsewhere, skipped
        self._dropped = 0  # duplicates counted by buffers since given up

    @property
    def duplicates(self) -> int:
        return self._dropped + sum(b.duplicates for b in self.buffers.values())

    @property
    def waiting(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    @property
    def releasable(self) -> int:
        """Messages waiting in partitions that are not replaying (only the ack floor holds them)."""
        return sum(len(b) for b in self.buffers.values() if not b.replaying)

    @property
    def replaying(self) -> list[int]:
        return sorted(p for p, b in self.buffers.items() if b.replaying)

    def add(self, message: HitMessage, stored_at: int = 0) -> bool:
        """Keep a message of an owned partition; False for another partition's or a duplicate."""
        buffer = self.buffers.get(message.partition)
        if buffer is None:
            self.unowned += 1
            return False
        return buffer.add(message, stored_at)

    def ready(self, floor: int) -> list[HitMessage]:
        """Every owned partition's messages up to `floor`, in (source sequence, partition) order;
        a partition still replaying releases nothing (its floor stays)."""
        released = [buffer.ready(floor) for buffer in self.buffers.values() if not buffer.replaying]
        return list(heapq.merge(*released, key=_source_order))

    def own(self, gained: Iterable[int], lost: Iterable[int]) -> dict[int, PartitionBuffer]:
        """Follow a rebalance: a lost partition's messages are dropped; a gained one (not owned
        already) gets an empty buffer, `replaying` from the first source sequence. Returns the new
        buffers, for the replay to fill and then mark done."""
        for p in lost:
            buffer = self.buffers.pop(p, None)
            if buffer is not None:
                self._dropped += buffer.duplicates
        fresh = {p: PartitionBuffer(replaying=True) for p in gained if p not in self.buffers}
        self.buffers.update(fresh)
        return fresh


def _source_order(message: HitMessage) -> tuple[int, int]:
    return message.sequence, message.partition
