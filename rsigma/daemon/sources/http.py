"""HTTP ingest (`--input http`): the lines of each `POST /api/v1/events` body, in order.

The API's handler calls `submit`, which waits while the daemon's input queue is full, so a client
that sends faster than the engine evaluates is slowed down rather than buffered without bound.
"""

from __future__ import annotations

import asyncio

from rsigma.daemon.ack import AckToken, InFlight, RawEvent
from rsigma.daemon.sources.base import Emit
from rsigma.daemon.state import Position


class HttpSource:
    def __init__(self) -> None:
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

    async def submit(self, payload: bytes) -> None:
        """Hand one line to the daemon (waits while its input queue is full)."""
        await self._running.wait()  # a request may come in between startup and the source's start
        assert self._emit is not None and self._inflight is not None
        await self._emit([RawEvent(payload, AckToken(self._inflight))])

    async def aclose(self) -> None:
        self.state = "closed"
