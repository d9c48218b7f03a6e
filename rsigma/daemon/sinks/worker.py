"""The worker that delivers to one sink, in order, with retries.

Every sink has its own bounded queue and worker, fed the same deliveries in the same order, so each
sink sees every result in order. A write that fails is retried with exponential backoff; after the
last retry the delivery's results go to the dead-letter queue (or, for an event its source can
still redeliver, back to the source), and only then does the sink count as done with it (see
`rsigma/daemon/ack.py`).
"""

from __future__ import annotations

import asyncio
import logging

from rsigma.daemon.ack import Delivery
from rsigma.daemon.config import DaemonConfig
from rsigma.daemon.dlq import DeadLetterQueue
from rsigma.daemon.metrics import Metrics
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
