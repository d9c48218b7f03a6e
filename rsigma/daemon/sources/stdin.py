"""stdin: newline-delimited events until end of file.

Lines are handed over a read chunk at a time. A line longer than --max-event-bytes is not kept
whole: its first bytes are handed over with the reason, for a dead-letter entry, and the rest is
skipped as it arrives (memory stays bounded by the limit, whatever the line's length).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from typing import Final

from rsigma.daemon.ack import AckToken, InFlight, RawEvent
from rsigma.daemon.sources.base import Emit
from rsigma.daemon.state import Position

log = logging.getLogger("rsigma.daemon")

READ_CHUNK_BYTES: Final = 1 << 16
#: How much of an oversized line the dead-letter entry keeps.
OVERSIZE_KEEP_BYTES: Final = 4096


def clipped(kept: bytes, dropped: int) -> bytes:
    """What a dead-letter entry keeps of an oversized event: its start, and how much was left out."""
    return kept + f"...[{dropped} more bytes]".encode()


class StdinSource:
    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self.state = "starting"

    @property
    def position(self) -> Position | None:
        return None

    def status(self) -> None:
        return None

    async def aclose(self) -> None:
        pass

    async def run(self, emit: Emit, inflight: InFlight) -> None:
        """Split stdin into lines; a line over --max-event-bytes is cut short (see the module docstring)."""
        self.state = "open"
        limit = self.max_event_bytes
        keep = min(OVERSIZE_KEEP_BYTES, limit)  # how much of an oversized line its DLQ entry shows

        def oversized(kept: bytes, dropped: int) -> list[RawEvent]:
            reason = f"line of {len(kept) + dropped} bytes exceeds --max-event-bytes {limit}"
            return [RawEvent(clipped(kept, dropped), AckToken(inflight), reason)]

        carry = b""
        dropped = 0  # bytes of an oversized line not kept
        empty = True
        async for chunk in _chunks():
            empty = False
            if dropped:
                end = chunk.find(b"\n")
                if end < 0:
                    dropped += len(chunk)
                    continue
                await emit(oversized(carry, dropped + end))
                carry, dropped, chunk = b"", 0, chunk[end + 1 :]
            lines = (carry + chunk if carry else chunk).split(b"\n")
            carry = lines.pop()
            events: list[RawEvent] = []
            for line in lines:
                if len(line) > limit:
                    events += oversized(line[:keep], len(line) - keep)
                else:
                    events.append(RawEvent(line, AckToken(inflight)))
            if events:
                await emit(events)
            if len(carry) > limit:
                dropped = len(carry) - keep
                carry = carry[:keep]
        if dropped:
            await emit(oversized(carry, dropped))
        elif carry:
            await emit([RawEvent(carry, AckToken(inflight))])
        self.state = "closed"
        if empty:
            log.warning(
                "stdin was empty: the input ended before any event. A service manager or container"
                " usually gives a daemon /dev/null as stdin: use --input http or --input nats://..."
            )


async def _chunks() -> AsyncIterator[bytes]:
    """Chunks of stdin: through the event loop for pipes, sockets and terminals; in a worker thread
    for anything else, such as a regular file or /dev/null (event loops cannot poll those, uvloop
    aborts the process when asked to, and reading one never blocks long)."""
    fd = sys.stdin.fileno()
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)):
        while chunk := await asyncio.to_thread(os.read, fd, READ_CHUNK_BYTES):
            yield chunk
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_CHUNK_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while chunk := await reader.read(READ_CHUNK_BYTES):
        yield chunk
