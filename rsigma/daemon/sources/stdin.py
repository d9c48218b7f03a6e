"""stdin: newline-delimited events until end of file.

Lines are handed over a read chunk at a time, split by `LineSplitter` (an oversized line goes to the
DLQ clipped; memory stays bounded whatever the line's length).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from typing import Final

from rsigma.daemon.ack import InFlight
from rsigma.daemon.sources.base import Emit
from rsigma.daemon.sources.lines import LineSplitter
from rsigma.daemon.state import Position

log = logging.getLogger("rsigma.daemon")

READ_CHUNK_BYTES: Final = 1 << 16


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
        """Split stdin into lines; a line over --max-event-bytes is cut short (see `LineSplitter`)."""
        self.state = "open"
        lines = LineSplitter(self.max_event_bytes, inflight)
        empty = True
        async for chunk in _chunks():
            empty = False
            if events := lines.feed(chunk):
                await emit(events)
        if events := lines.end():
            await emit(events)
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
