"""The input queue: bounded by events, moved in lists.

Sources hand over what they have at once (a JetStream batch, the lines of a stdin chunk) and the
engine takes up to its batch size, so the per-event cost of an `asyncio.Queue` (a put, a get and
their waiter checks for every event) is paid per list instead. Capacity counts events: a put waits
while the queue holds `capacity` events or more, so one list may overshoot it by its own length,
which the source bounds (a NATS pull batch, a stdin chunk).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class EventQueue(Generic[T]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()

    def qsize(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.capacity

    async def put(self, items: list[T]) -> bool:
        """Append the items in order, after waiting for room; returns whether it had to wait."""
        waited = False
        while len(self._items) >= self.capacity:
            waited = True
            putter = asyncio.get_running_loop().create_future()
            self._putters.append(putter)
            try:
                await putter
            except asyncio.CancelledError:
                self._wake(self._putters)  # pass the room on to the next putter
                raise
        self._items.extend(items)
        self._wake(self._getters)
        if len(self._items) < self.capacity:
            self._wake(self._putters)  # room left for the next waiting source
        return waited

    async def get(self, limit: int) -> list[T]:
        """At least one item and at most `limit`, in order; waits while the queue is empty."""
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                self._wake(self._getters)
                raise
        items = self._items
        count = min(limit, len(items))
        taken = [items.popleft() for _ in range(count)]
        if len(items) < self.capacity:
            self._wake(self._putters)
        return taken

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
