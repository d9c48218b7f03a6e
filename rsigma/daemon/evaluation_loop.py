"""Evaluation: batches from the input queue through the backend, and each event's outcome, in input
order, to every sink's queue (results), the dead-letter queue (the reason it cannot be used), or
straight to its acknowledgement (nothing to send).

With `--cluster`, a batch's correlation hits are first stored in the cluster's hits stream
(`store_hits`, see `cluster.py`): only then do its events go on, so none is acked before its hits are.

Batches are submitted while earlier ones are still out, up to the backend's window (a pool keeps
every matcher busy that way); outcomes are taken strictly in submission order, so every sink sees
the results in input order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from rsigma.daemon.ack import Delivery, RawEvent
from rsigma.daemon.backend import Backend
from rsigma.daemon.config import DaemonConfig
from rsigma.daemon.dlq import DeadLetterQueue
from rsigma.daemon.event_queue import EventQueue
from rsigma.daemon.eviction_watch import EvictionWatch
from rsigma.daemon.metrics import Metrics
from rsigma.daemon.sinks.worker import SinkWorker
from rsigma.daemon.sources.lines import OVERSIZE_KEEP_BYTES, clipped
from rsigma.payloads import BatchResult

#: Stores a batch's correlation hits before its events may complete (`--cluster`, see `cluster.py`).
StoreHits = Callable[[list[RawEvent], BatchResult], Awaitable[None]]


class EvaluationLoop:
    def __init__(
        self,
        input: EventQueue[RawEvent | None],
        backend: Backend,
        sinks: list[SinkWorker],
        dlq: DeadLetterQueue,
        metrics: Metrics,
        config: DaemonConfig,
        store_hits: StoreHits | None = None,
    ) -> None:
        self.input = input
        self.store_hits = store_hits
        self.backend = backend
        self.sinks = sinks
        self.dlq = dlq
        self.metrics = metrics
        self.batch_size = config.batch_size
        # --max-state-entries caps each matcher's windows, but with --cluster the supervisor's alone
        per_matcher = config.workers if config.cluster is None else 0
        self.evictions = EvictionWatch(
            metrics.correlation_evictions, config.correlation.max_state_entries, per_matcher
        )
        self.max_event_bytes = config.max_event_bytes
        self.group_entries_dropped = 0  # the backend's running total, as last counted

    async def run(self) -> None:
        """Batches go to the backend while earlier ones are still out (up to its window); their
        outcomes are delivered strictly in order."""
        backend = self.backend
        limit = max(self.batch_size, backend.min_batch)
        submitted: asyncio.Queue[tuple[list[RawEvent], Any] | None] = asyncio.Queue(maxsize=backend.window)
        completer = asyncio.create_task(self._complete(submitted), name="engine-results")
        try:
            while True:
                batch = await self.input.get(limit)
                self.metrics.input_queue_depth.set(self.input.qsize())
                end = None in batch  # the end-of-input marker: nothing after it is evaluated
                events: list[RawEvent] = batch[: batch.index(None)] if end else batch  # type: ignore[assignment]
                if events:
                    self.metrics.batch_size.observe(len(events))
                    await submitted.put((events, backend.submit([raw.payload for raw in events])))
                if end:
                    break
            await submitted.put(None)
            await completer
        finally:
            completer.cancel()
            self.evictions.flush()

    async def _complete(self, submitted: asyncio.Queue[tuple[list[RawEvent], Any] | None]) -> None:
        metrics = self.metrics
        while (item := await submitted.get()) is not None:
            events, evaluation = item
            result: BatchResult = await evaluation
            if self.store_hits is not None:
                await self.store_hits(events, result)
            metrics.batch_evaluated(result.evaluated, result.busy_s)
            metrics.state_entries.set(self.backend.windows)
            self.evictions.update(self.backend.correlation_evictions)
            dropped = self.backend.group_entries_dropped
            if dropped > self.group_entries_dropped:
                metrics.group_entries_dropped.inc(dropped - self.group_entries_dropped)
                self.group_entries_dropped = dropped
            for raw, outcome in zip(events, result.outcomes, strict=True):
                if outcome is None:
                    raw.token.ack()
                elif isinstance(outcome, str):
                    metrics.parse_errors.inc()
                    await self.dlq.put(self._original(raw.payload), outcome, raw.token, raw.token.ack)
                else:
                    lines, keys = outcome
                    metrics.count_results(keys)
                    delivery = Delivery(lines, raw.token, len(self.sinks))
                    for worker in self.sinks:
                        try:
                            worker.queue.put_nowait(delivery)
                        except asyncio.QueueFull:
                            await worker.queue.put(delivery)

    def _original(self, payload: bytes) -> str:
        """The payload for its dead-letter entry; an oversized one (a message) is cut like a line is,
        so the entry stays small enough for any DLQ, a NATS one with its payload limit included."""
        limit = self.max_event_bytes
        if len(payload) > limit:
            keep = min(OVERSIZE_KEEP_BYTES, limit)
            payload = clipped(payload[:keep], len(payload) - keep)
        return payload.decode("utf-8", "replace")
