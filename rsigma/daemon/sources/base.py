"""Where events come from: one contract for stdin, HTTP ingest and NATS JetStream.

A source hands the daemon batches of raw payloads, each with the ack token its source resolves when
the event is done (see `rsigma/daemon/ack.py`): `run(emit, inflight)` calls `await emit(events)`
for every batch, in order; `emit` waits while the daemon's input queue is full, which is how
back-pressure reaches the source. `run` returns when the input ends (stdin at EOF) or runs until it
is cancelled at shutdown (HTTP, NATS). Sources never parse events: a payload is evaluated, or
dead-lettered with its reason, by the daemon.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from rsigma.daemon.ack import InFlight, RawEvent
from rsigma.daemon.state import Position

Emit = Callable[[list[RawEvent]], Awaitable[None]]


class Source(Protocol):
    @property
    def state(self) -> str:
        """For `/api/v1/status` `inputs`: e.g. open, closed, listening, connected, disconnected."""

    @property
    def position(self) -> Position | None:
        """The newest position at or below which every event is acknowledged (stored with a state
        snapshot); None for sources without positions (stdin, HTTP)."""

    async def run(self, emit: Emit, inflight: InFlight) -> None: ...

    def status(self) -> dict[str, Any] | None:
        """Details for the status `nats` section, for sources that have them."""

    async def aclose(self) -> None: ...
