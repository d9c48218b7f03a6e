"""The delivery model: when is an input event done?

One event's trip through the daemon:

1. A source reads a raw line (or message) and wraps it in a `RawEvent` with an `AckToken`.
2. The engine task decodes and evaluates it. A line that cannot be used (not JSON, not an object,
   empty, too large) becomes a dead-letter entry; its token resolves once the DLQ has it.
3. Otherwise its results are serialised once and handed, as one `Delivery`, to every sink's queue.
   No results: the token resolves at once.
4. Each sink writes the delivery (retrying with backoff). A sink that gives up hands the results to
   the DLQ. Either way the sink is then done with it.
5. When every sink is done, the token resolves: `AckToken.ack()` runs the source's callback (a
   JetStream ack for NATS; bookkeeping only for stdin and HTTP).

A token that never resolves (process killed, drain timeout) means the source never acknowledged the
event; a redelivering source (NATS) hands it out again. Nothing is acknowledged before its results
are delivered or dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class AckToken:
    """Resolves once; counts in-flight events so shutdown knows what did not drain."""

    __slots__ = ("_callback", "_done", "_tracker")

    def __init__(self, tracker: InFlight, callback: Callable[[], None] | None = None) -> None:
        self._callback = callback
        self._done = False
        self._tracker = tracker
        tracker.count += 1

    @property
    def done(self) -> bool:
        return self._done

    def ack(self) -> None:
        if self._done:
            return
        self._done = True
        self._tracker.count -= 1
        if self._callback is not None:
            self._callback()


@dataclass(slots=True)
class InFlight:
    """Events read but not yet acknowledged."""

    count: int = 0


@dataclass(slots=True)
class RawEvent:
    payload: bytes
    token: AckToken
    source_id: str | None = None  # stable across redeliveries (JetStream: stream and sequence)


@dataclass(slots=True)
class Delivery:
    """The serialised results of one event, shared by every sink; acks when the last sink is done."""

    lines: list[bytes]  # one JSON line per result
    token: AckToken
    pending: int
    source_id: str | None = None  # the source's stable id for the event (a JetStream stream sequence)

    def results_json(self) -> str:
        """The results as one JSON array, for a dead-letter entry (only built when a sink gives up)."""
        return "[" + ",".join(line.rstrip(b"\n").decode() for line in self.lines) + "]"

    def sink_done(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.token.ack()
