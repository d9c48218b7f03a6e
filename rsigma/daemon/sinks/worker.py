"""The worker that delivers to one sink, in order, with retries.

Every sink has its own bounded queue and worker, fed the same deliveries in the same order, so each
sink sees every result in order. A write that fails is retried with exponential backoff; after the
last retry the delivery's results go back to the source (an event JetStream can still redeliver),
or to the dead-letter queue, and only then does the sink count as done with it (see
`rsigma/daemon/ack.py`). Without a `--dlq`, results that nothing would bring back (the last JetStream
delivery, stdin, HTTP) are held and retried until the sink takes them: the sink's queue fills and
the input waits, instead of acknowledging results that were never delivered.
"""

from __future__ import annotations

import asyncio
import logging

from rsigma.daemon.ack import Delivery
from rsigma.daemon.config import DaemonConfig
from rsigma.daemon.dlq import DeadLetterQueue
from rsigma.daemon.metrics import Metrics
from rsigma.daemon.retrying import Throttle, backoff_s
from rsigma.daemon.sinks import Sink

log = logging.getLogger("rsigma.daemon")


class SinkWorker:
    """Drains one sink's queue in order; retries a failed batch, then dead-letters its results."""

    def __init__(self, sink: Sink, config: DaemonConfig, dlq: DeadLetterQueue, metrics: Metrics) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=config.buffer_size)
        self.retry_max = config.sink_retry_max
        self.backoff_base_s = config.sink_backoff_base_s
        self.backoff_max_s = config.sink_backoff_max_s
        self.batch_max = config.sink_batch_max
        self.batch_flush_s = config.sink_batch_flush_s
        self.dlq = dlq
        self.metrics = metrics
        self._holding = Throttle()

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            self._take_queued(batch)
            if self.batch_flush_s and len(batch) < self.batch_max:
                await self._fill(batch)
            await self._deliver(batch)
            for _ in batch:
                self.queue.task_done()

    def _take_queued(self, batch: list[Delivery]) -> None:
        while len(batch) < self.batch_max and not self.queue.empty():
            batch.append(self.queue.get_nowait())

    async def _fill(self, batch: list[Delivery]) -> None:
        """--sink-batch-flush-ms: wait that long at most for a fuller batch (fewer, larger writes).

        It polls each millisecond rather than awaiting `queue.get()` under a timeout: on Python 3.11 a
        timed-out `wait_for` can drop the item its `get` had just taken."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_flush_s
        while len(batch) < self.batch_max and (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(remaining, 0.001))
            self._take_queued(batch)

    async def _deliver(self, batch: list[Delivery]) -> None:
        error = await self._attempt(batch, self.retry_max + 1)
        if error is None:
            return
        self.metrics.sink_failures.labels(sink=self.sink.name).inc(len(batch))
        reason = f"sink delivery failure: {self.sink.name}: {error}"
        handed_back = [d for d in batch if d.token.redeliverable]
        kept = [d for d in batch if not d.token.redeliverable]
        for d in handed_back:
            d.sink_failed()
        if handed_back:
            log.warning(
                "sink gave up; events left for redelivery",
                extra={"sink": self.sink.name, "events": len(handed_back)},
            )
        if not kept:
            return
        if self.dlq.configured:
            for d in kept:
                await self.dlq.put(d.results_json(), reason, d.token, d.sink_done, self.sink.name)
            return
        await self._hold(kept, error)

    async def _attempt(self, batch: list[Delivery], attempts: int, first: int = 0) -> OSError | None:
        """Deliver with up to `attempts` tries (backoff before each retry); None once delivered,
        else the last error. `first` numbers the tries that came before."""
        error: OSError | None = None
        for attempt in range(first, first + attempts):
            if attempt:
                self.metrics.sink_retries.labels(sink=self.sink.name).inc()
                for d in batch:
                    d.token.hold()  # JetStream must not time the message out while it is retried
                await asyncio.sleep(backoff_s(attempt, self.backoff_base_s, self.backoff_max_s))
            try:
                await self.sink.deliver(batch)
            except OSError as e:
                error = e
                if attempt <= self.retry_max:
                    log.warning(
                        "sink write failed",
                        extra={"sink": self.sink.name, "attempt": attempt + 1, "error": str(e)},
                    )
                continue
            for d in batch:
                d.sink_done()
            return None
        return error

    async def _hold(self, batch: list[Delivery], error: OSError) -> None:
        """No DLQ, and nothing would bring these events back: retry until the sink takes them."""
        attempt = self.retry_max + 1
        while error is not None:
            if self._holding.ready():
                log.warning(
                    "sink write failed; holding the results until written (no --dlq, and the source "
                    "cannot redeliver them), input waits meanwhile",
                    extra={
                        "sink": self.sink.name,
                        "events": len(batch),
                        "attempt": attempt,
                        "error": str(error),
                    },
                )
            error = await self._attempt(batch, 1, attempt)
            attempt += 1
        log.warning(
            "sink write succeeded; held results delivered",
            extra={"sink": self.sink.name, "events": len(batch)},
        )
