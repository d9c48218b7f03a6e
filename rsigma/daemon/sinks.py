"""Output sinks (`stdout`, `file:///path`) and the worker that delivers to one sink with retries.

Every sink has its own bounded queue and worker, fed the same deliveries in the same order, so each
sink sees every result in order. A write that fails is retried with exponential backoff; after the
last retry the delivery's results go to the dead-letter queue, and only then does the sink count as
done with it (see `ack.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from rsigma.daemon.ack import Delivery
from rsigma.daemon.dlq import DeadLetterQueue
from rsigma.daemon.errors import ConfigError
from rsigma.daemon.metrics import Metrics

log = logging.getLogger("rsigma.daemon")

STDOUT_FD = 1


class Sink(Protocol):
    name: str

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class StdoutSink:
    """Writes straight to file descriptor 1: no Python buffer, so a stuck reader blocks only the
    writer thread, never a flush at exit."""

    name = "stdout"

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(STDOUT_FD, view) :]

    def close(self) -> None:
        pass


class FileSink:
    """Appends; reopens the file after a failed write (rotation, a removed or remounted directory)."""

    def __init__(self, path: Path, what: str = "--output") -> None:
        self.path = path
        self.name = "file"
        self._handle = None
        if not path.parent.is_dir():
            raise ConfigError(f"{what} file {path}: directory {path.parent} does not exist")

    def write(self, data: bytes) -> None:
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


def open_sink(url: str, what: str = "--output") -> Sink:
    """`stdout` or `file:///absolute/path`; anything else is a startup error naming the URL."""
    if url == "stdout":
        return StdoutSink()
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if not parsed.path:
            raise ConfigError(f"{what} {url!r}: expected file:///absolute/path")
        if parsed.netloc in ("", "localhost"):
            return FileSink(Path(parsed.path), what)
        if parsed.netloc in (".", ".."):  # file://./relative/path, as RSigma reads it
            return FileSink(Path(parsed.netloc + parsed.path), what)
        raise ConfigError(f"{what} {url!r}: a file URL names a local path (file:///path or file://./path)")
    raise ConfigError(f"{what} {url!r}: unsupported (expected stdout or file:///path)")


class ThreadedWriter:
    """Runs one sink's blocking writes on a daemon thread of its own.

    A sink that blocks (a full pipe, a hung network filesystem) then stalls only its own deliveries:
    the event loop, the API and the shutdown drain keep running, and the process can still exit.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.name = sink.name
        self._requests: queue.SimpleQueue[tuple[bytes, asyncio.Future[None]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        self._thread.start()

    async def write(self, data: bytes, msg_id: str | None = None) -> None:
        """`msg_id` is ignored: a file or stdout has no de-duplication."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._requests.put((data, future))
        await future

    async def deliver(self, batch: list[Delivery]) -> None:
        """One write for the whole batch (file and stdout sinks take bytes, not messages)."""
        await self.write(b"".join(line for d in batch for line in d.lines))

    def _run(self) -> None:
        while True:
            data, future = self._requests.get()
            loop = future.get_loop()
            try:
                self.sink.write(data)
            except OSError as e:
                loop.call_soon_threadsafe(_settle, future, e)
            else:
                loop.call_soon_threadsafe(_settle, future, None)

    def close(self) -> None:
        self.sink.close()

    async def aclose(self) -> None:
        self.sink.close()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # cancelled while the write was running
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class Publisher(Protocol):
    """What a sink worker delivers to: a line sink on its thread, or a message sink (NATS)."""

    name: str

    async def deliver(self, batch: list[Delivery]) -> None: ...

    async def write(self, data: bytes, msg_id: str | None = None) -> None: ...

    async def aclose(self) -> None: ...


class SinkWorker:
    """Drains one sink's queue in order; retries a failed batch, then dead-letters its results."""

    def __init__(
        self,
        sink: Publisher,
        *,
        buffer_size: int,
        retry_max: int,
        backoff_base_s: float,
        backoff_max_s: float,
        batch_max: int,
        dlq: DeadLetterQueue,
        metrics: Metrics,
    ) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=buffer_size)
        self.retry_max = retry_max
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.batch_max = batch_max
        self.dlq = dlq
        self.metrics = metrics

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.batch_max and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await self._deliver(batch)
            for _ in batch:
                self.queue.task_done()

    async def _deliver(self, batch: list[Delivery]) -> None:
        error: Exception | None = None
        for attempt in range(self.retry_max + 1):
            if attempt:
                self.metrics.sink_retries.labels(sink=self.sink.name).inc()
                await asyncio.sleep(min(self.backoff_base_s * 2 ** (attempt - 1), self.backoff_max_s))
            try:
                await self.sink.deliver(batch)
            except OSError as e:
                error = e
                log.warning(
                    "sink write failed",
                    extra={"sink": self.sink.name, "attempt": attempt + 1, "error": str(e)},
                )
                continue
            for d in batch:
                d.sink_done()
            return
        self.metrics.sink_failures.labels(sink=self.sink.name).inc(len(batch))
        reason = f"sink delivery failure: {self.sink.name}: {error}"
        for d in batch:
            if d.token.redeliverable:
                d.sink_failed()
            else:
                await self.dlq.put(d.results_json(), reason, d.token, d.sink_done, self.sink.name)
        if batch[0].token.redeliverable:
            log.warning(
                "sink gave up; events left for redelivery",
                extra={"sink": self.sink.name, "events": len(batch)},
            )
