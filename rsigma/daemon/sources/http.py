"""HTTP ingest (`--input http`): the lines of each `POST /api/v1/events` body, in order.

The API's handler reads the body a chunk at a time, splits it with `lines()` and hands each chunk's
events to `submit`, which waits while the daemon's input queue is full: a client that sends faster
than the engine evaluates is slowed down rather than buffered, whatever the size of its body.
"""

from __future__ import annotations

import asyncio

from rsigma.daemon.ack import InFlight, RawEvent
from rsigma.daemon.sources.base import Emit
from rsigma.daemon.sources.lines import LineSplitter
from rsigma.daemon.state import Position


class HttpSource:
    def __init__(self, max_event_bytes: int, buffer_size: int) -> None:
        self.max_event_bytes = max_event_bytes
        self.buffer_size = buffer_size
        self.state = "starting"
        self._emit: Emit | None = None
        self._inflight: InFlight | None = None
        self._running = asyncio.Event()

    @property
    def position(self) -> Position | None:
        return None

    def status(self) -> None:
        return None

    async def run(self, emit: Emit, inflight: InFlight) -> None:
        """Events arrive through `submit` until shutdown."""
        self._emit, self._inflight = emit, inflight
        self.state = "listening"
        self._running.set()
        await asyncio.Event().wait()

    async def lines(self) -> LineSplitter:
        """A splitter for one request body (a line over --max-event-bytes goes to the DLQ clipped)."""
        await self._running.wait()  # a request may come in between startup and the source's start
        assert self._inflight is not None
        return LineSplitter(self.max_event_bytes, self._inflight)

    async def submit(self, events: list[RawEvent]) -> None:
        """Hand events to the daemon, in order, at most --buffer-size at a time (waits while its input
        queue is full)."""
        assert self._emit is not None
        for start in range(0, len(events), self.buffer_size):
            await self._emit(events[start : start + self.buffer_size])

    async def aclose(self) -> None:
        self.state = "closed"
