"""Line sinks: `stdout` and `file:///path`, each written by a thread of its own.

A writer (`StdoutWriter`, `FileWriter`) does blocking writes; `LineSink` runs one on a daemon thread,
so a destination that blocks (a full pipe, a hung network filesystem) stalls only its own deliveries:
the event loop, the API and the shutdown drain keep running, and the process can still exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlparse

from rsigma.daemon.ack import Delivery
from rsigma.errors import ConfigError
from rsigma.output_format import LineFormat

STDOUT_FD = 1


class LineWriter(Protocol):
    name: str

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class StdoutWriter:
    """Writes straight to file descriptor 1: no Python buffer, so a stuck reader blocks only the
    writer thread, never a flush at exit."""

    name = "stdout"

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(STDOUT_FD, view) :]

    def close(self) -> None:
        pass


class FileWriter:
    """Appends. Opened at once, so an unusable path is a startup error; reopened when the path no
    longer names the open file (rotated by renaming, removed, replaced) and after a failed write,
    so writes follow the path as `logrotate` and operators expect."""

    def __init__(self, path: Path, what: str = "--output") -> None:
        self.path = path
        self.name = "file"
        if not path.parent.is_dir():
            raise ConfigError(f"{what} file {path}: directory {path.parent} does not exist")
        try:
            self._handle: BinaryIO | None = path.open("ab", buffering=0)
        except OSError as e:
            raise ConfigError(f"{what} file {path}: cannot open for appending: {e.strerror or e}") from e

    def _moved(self, fd: int) -> bool:
        try:
            at_path = os.stat(self.path)
        except OSError:
            return True
        mine = os.fstat(fd)
        return (at_path.st_dev, at_path.st_ino) != (mine.st_dev, mine.st_ino)

    def write(self, data: bytes) -> None:
        if self._handle is not None and self._moved(self._handle.fileno()):
            self.close()
        if self._handle is None:
            self._handle = self.path.open("ab", buffering=0)
        fd = self._handle.fileno()
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[self._handle.write(view) :]
        except OSError:
            # A full disk (ENOSPC, EFBIG) takes what fits first: cut it off again, or the retry would
            # glue that torn line to the next one, and both results would be lost to a line reader.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            self.close()
            raise

    def close(self) -> None:
        if self._handle is not None:
            try:
                self._handle.close()
            finally:
                self._handle = None


def open_writer(url: str, what: str = "--output") -> LineWriter:
    """`stdout` (or `stdout://`, as RSigma also spells it) or `file:///absolute/path`; anything else is
    a startup error naming the URL."""
    if url in ("stdout", "stdout://"):
        return StdoutWriter()
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if not parsed.path:
            raise ConfigError(f"{what} {url!r}: expected file:///absolute/path")
        if parsed.netloc in ("", "localhost"):
            return FileWriter(Path(parsed.path), what)
        if parsed.netloc in (".", ".."):  # file://./relative/path, as RSigma reads it
            return FileWriter(Path(parsed.netloc + parsed.path), what)
        raise ConfigError(f"{what} {url!r}: a file URL names a local path (file:///path or file://./path)")
    raise ConfigError(f"{what} {url!r}: unsupported (expected stdout or file:///path)")


class LineSink:
    """A writer's blocking writes on a daemon thread of its own (see the module docstring)."""

    def __init__(self, writer: LineWriter, encode: LineFormat | None = None) -> None:
        self.writer = writer
        self.name = writer.name
        self.encode = encode
        self._requests: queue.SimpleQueue[tuple[bytes, asyncio.Future[None]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"sink-{writer.name}", daemon=True)
        self._thread.start()

    async def write(self, data: bytes, msg_id: str | None = None) -> None:
        """`msg_id` is ignored: a file or stdout has no de-duplication."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._requests.put((data, future))
        await future

    async def deliver(self, batch: list[Delivery]) -> None:
        """One write for the whole batch (file and stdout sinks take bytes, not messages), in the
        sink's format."""
        lines = (line for d in batch for line in d.lines)
        await self.write(b"".join(map(self.encode, lines) if self.encode else lines))

    def _run(self) -> None:
        while True:
            data, future = self._requests.get()
            loop = future.get_loop()
            try:
                self.writer.write(data)
            except OSError as e:
                loop.call_soon_threadsafe(_settle, future, e)
            else:
                loop.call_soon_threadsafe(_settle, future, None)

    def status(self) -> None:
        return None

    async def aclose(self) -> None:
        self.writer.close()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # cancelled while the write was running
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
