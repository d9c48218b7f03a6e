"""The delivery model: when is an input event done?

One event's trip through the daemon:

1. A source reads a raw line (or message) and wraps it in a `RawEvent` with an `AckToken`.
2. The engine task decodes and evaluates it. A line that cannot be used (not JSON, not an object,
   empty, too large) becomes a dead-letter entry; its token resolves once the DLQ has it.
3. Otherwise its results are serialised once and handed, as one `Delivery`, to every sink's queue.
   No results: the token resolves at once.
4. Each sink writes the delivery (retrying with backoff). A sink that gives up asks for the event
   to be redelivered when the source can still do so (JetStream below `max_deliver`), and otherwise
   hands the results to the DLQ. Either way the sink is then done with it. An event the source
   cannot redeliver (the last JetStream delivery, stdin, HTTP) whose results neither the sink nor
   the DLQ takes is held and retried until one does (`AckToken.hold()` at each retry).
5. When every sink is done, the token resolves: `AckToken.ack()` runs the source's callback (a
   JetStream ack for NATS; bookkeeping only for stdin and HTTP), or, if a sink gave up on a
   redeliverable event, `AckToken.redeliver()` runs the source's retry callback (a JetStream nak).

A token that never resolves (process killed, drain timeout) means the source never acknowledged the
event; a redelivering source (NATS) hands it out again. Nothing is acknowledged before its results
are delivered or dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass


class AckToken:
    """Resolves once, by an ack or by a request for redelivery; counts in-flight events so shutdown
    knows what did not drain. Sources that acknowledge (JetStream) subclass it and override the hooks;
    for stdin and HTTP resolving is bookkeeping only."""

    __slots__ = ("_done", "_tracker")

    def __init__(self, tracker: InFlight) -> None:
        self._done = False
        self._tracker = tracker
        tracker.count += 1

    @property
    def done(self) -> bool:
        return self._done

    @property
    def redeliverable(self) -> bool:
        """Whether the source can still hand the event out again (JetStream below max_deliver)."""
        return False

    @property
    def source_id(self) -> str | None:
        """The event's id at its source, stable across redeliveries (JetStream: stream and sequence)."""
        return None

    @property
    def source_sequence(self) -> int | None:
        """The event's sequence in its source stream (JetStream), the order a cluster applies hits in."""
        return None

    @property
    def delivery_count(self) -> int | None:
        """How often the source has handed this event out, where it counts."""
        return None

    def ack(self) -> None:
        if not self._done:
            self._resolve()
            self._acked()

    def hold(self) -> None:
        """Still being worked on (a write is retried): a redelivering source keeps the event pending
        instead of timing it out (a JetStream in-progress ack)."""
        if not self._done:
            self._hold()

    def redeliver(self) -> None:
        """Resolve without acking: the source hands the event out again later (a JetStream nak)."""
        if not self._done:
            self._resolve()
            self._redeliver()

    def _resolve(self) -> None:
        self._done = True
        self._tracker.count -= 1

    def _acked(self) -> None:
        """The source's acknowledgement."""

    def _redeliver(self) -> None:
        """The source's request for redelivery."""

    def _hold(self) -> None:
        """The source's notice that the event is still in progress."""


@dataclass(slots=True)
class InFlight:
    """Events read but not yet acknowledged."""

    count: int = 0


@dataclass(slots=True)
class RawEvent:
    """An input line or message as read, with the token that acknowledges it. `error` is set when
    the source could not take it whole (a line over --max-event-bytes): it is then dead-lettered with
    that reason and `payload` holds what the entry keeps of it."""

    payload: bytes
    token: AckToken
    error: str | None = None


@dataclass(slots=True)
class Delivery:
    """The serialised results of one event, shared by every sink; acks when the last sink is done."""

    lines: list[bytes]  # one JSON line per result
    token: AckToken
    pending: int
    failed: bool = False  # a sink gave up and the source will redeliver the event

    def results_json(self) -> str:
        """The results as one JSON array, for a dead-letter entry (only built when a sink gives up)."""
        return "[" + ",".join(line.rstrip(b"\n").decode() for line in self.lines) + "]"

    def sink_done(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            if self.failed:
                self.token.redeliver()
            else:
                self.token.ack()

    def sink_failed(self) -> None:
        """A sink gave up on a redeliverable event: once every sink is done, ask for redelivery."""
        self.failed = True
        self.sink_done()
