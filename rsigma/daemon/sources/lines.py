"""Newline-delimited events out of a byte stream that arrives in chunks (stdin, an HTTP ingest body).

Lines are handed over a chunk at a time. A line longer than --max-event-bytes is not kept whole: its
first bytes are handed over with the reason, for a dead-letter entry, and the rest is skipped as it
arrives, so memory stays bounded by the chunk size and the limit, whatever the stream's length.
"""

from __future__ import annotations

from typing import Final

from rsigma.daemon.ack import AckToken, InFlight, RawEvent

#: How much of an oversized line the dead-letter entry keeps.
OVERSIZE_KEEP_BYTES: Final = 4096


def clipped(kept: bytes, dropped: int) -> bytes:
    """What a dead-letter entry keeps of an oversized event: its start, and how much was left out."""
    return kept + f"...[{dropped} more bytes]".encode()


class LineSplitter:
    """Feed it chunks in order; it returns the events each chunk completes (an empty line is an event
    too, which the daemon dead-letters). `end()` returns the last line when the stream does not end
    with a newline."""

    def __init__(self, max_event_bytes: int, inflight: InFlight) -> None:
        self.limit = max_event_bytes
        self.keep = min(OVERSIZE_KEEP_BYTES, max_event_bytes)  # what an oversized line's entry shows
        self.inflight = inflight
        self._carry = b""  # the start of a line whose end has not arrived
        self._dropped = 0  # bytes of an oversized line not kept

    def feed(self, chunk: bytes) -> list[RawEvent]:
        events: list[RawEvent] = []
        if self._dropped:
            end = chunk.find(b"\n")
            if end < 0:
                self._dropped += len(chunk)
                return events
            events.append(self._oversized(self._carry, self._dropped + end))
            self._carry, self._dropped, chunk = b"", 0, chunk[end + 1 :]
        lines = (self._carry + chunk if self._carry else chunk).split(b"\n")
        self._carry = lines.pop()
        for line in lines:
            if len(line) > self.limit:
                events.append(self._oversized(line[: self.keep], len(line) - self.keep))
            else:
                events.append(RawEvent(line, AckToken(self.inflight)))
        if len(self._carry) > self.limit:
            self._dropped = len(self._carry) - self.keep
            self._carry = self._carry[: self.keep]
        return events

    def end(self) -> list[RawEvent]:
        carry, dropped = self._carry, self._dropped
        self._carry, self._dropped = b"", 0
        if dropped:
            return [self._oversized(carry, dropped)]
        return [RawEvent(carry, AckToken(self.inflight))] if carry else []

    def _oversized(self, kept: bytes, dropped: int) -> RawEvent:
        reason = f"line of {len(kept) + dropped} bytes exceeds --max-event-bytes {self.limit}"
        return RawEvent(clipped(kept, dropped), AckToken(self.inflight), reason)
