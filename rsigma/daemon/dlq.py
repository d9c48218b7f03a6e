"""The dead-letter queue: events and results that could not be processed or delivered, with why.

An entry is one compact JSON line `{"original_event": <string>, "error": <reason>, "timestamp":
<RFC 3339 UTC>}`. The entry's completion callback (usually an ack) runs only once the entry is
written; without a configured DLQ the failure is logged at error level and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import orjson

from rsigma.daemon.ack import AckToken
from rsigma.daemon.metrics import Metrics
from rsigma.daemon.sinks import Sink
from rsigma.daemon.state import format_ns

log = logging.getLogger("rsigma.daemon")

#: Writes of a DLQ entry are retried this many times (with backoff) before the entry is given up on.
DLQ_RETRY_MAX = 5


def dlq_entry(original: str, error: str, delivery_count: int | None = None) -> bytes:
    """`delivery_count` (how often a redelivering source handed the event out) is added when known."""
    timestamp = format_ns(time.time_ns())
    entry: dict[str, object] = {"original_event": original, "error": error, "timestamp": timestamp}
    if delivery_count is not None:
        entry["delivery_count"] = delivery_count
    return orjson.dumps(entry) + b"\n"


class DeadLetterQueue:
    def __init__(self, sink: Sink | None, *, buffer_size: int, metrics: Metrics) -> None:
        self.sink = sink
        self.metrics = metrics
        self.queue: asyncio.Queue[tuple[bytes, Callable[[], None], str | None]] = asyncio.Queue(
            maxsize=buffer_size
        )

    async def put(
        self,
        original: str,
        error: str,
        token: AckToken,
        done: Callable[[], None],
        sink: str | None = None,
    ) -> None:
        """An entry for the event of `token`; `done` runs once it is written. `sink` names the output
        that gave up on the event's results (None: the event itself failed).

        An event with a source id gets a de-duplication key, `<source id>:dlq[:<sink>]`, for sinks
        that have one (a NATS DLQ's `Nats-Msg-Id`), so an entry written again after a reconnect is
        stored once."""
        delivery_count = token.delivery_count
        source = token.source_id
        msg_id = None if source is None else f"{source}:dlq" + (f":{sink}" if sink else "")
        self.metrics.dlq_events.inc()
        if self.sink is None:
            log.error(
                "event failed and no --dlq is configured",
                extra={"error": error, "delivery_count": delivery_count},
            )
            done()
            return
        await self.queue.put((dlq_entry(original, error, delivery_count), done, msg_id))

    async def run(self) -> None:
        assert self.sink is not None
        while True:
            data, done, msg_id = await self.queue.get()
            for attempt in range(DLQ_RETRY_MAX + 1):
                try:
                    await self.sink.write(data, msg_id)
                    break
                except OSError as e:
                    log.error("DLQ write failed", extra={"attempt": attempt + 1, "error": str(e)})
                    await asyncio.sleep(min(0.1 * 2**attempt, 5.0))
            else:
                self.metrics.dlq_write_failures.inc()
                self.queue.task_done()
                continue  # not acknowledged: a redelivering source hands the event out again
            done()
            self.queue.task_done()
