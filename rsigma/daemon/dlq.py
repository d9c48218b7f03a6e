"""The dead-letter queue: events and results that could not be processed or delivered, with why.

An entry is one compact JSON line `{"original_event": <string>, "error": <reason>, "timestamp":
<RFC 3339 UTC>}`. The entry's completion callback (usually an ack) runs only once the entry is
written; without a configured DLQ the failure is logged at error level and counted.

A write that fails is retried with backoff. After `DLQ_RETRY_MAX` retries an event its source can
still redeliver (JetStream below `--nats-max-deliver`) is handed back to it; any other (the last
JetStream delivery, stdin, HTTP) is held, and retried until the entry is written: nothing else would
ever bring it back. While the DLQ holds an entry its bounded queue fills, and the daemon stops
taking input (back-pressure) instead of losing events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import orjson

from rsigma.daemon.ack import AckToken
from rsigma.daemon.metrics import Metrics
from rsigma.daemon.retrying import Throttle, backoff_s
from rsigma.daemon.sinks import Sink
from rsigma.daemon.state import format_ns

log = logging.getLogger("rsigma.daemon")

#: Writes of a DLQ entry are retried this many times (with backoff) before a redeliverable event is
#: handed back to its source; an event that cannot come back is retried until it is written.
DLQ_RETRY_MAX = 5


def dlq_entry(original: str, error: str, delivery_count: int | None = None) -> bytes:
    """`delivery_count` (how often a redelivering source handed the event out) is added when known."""
    timestamp = format_ns(time.time_ns())
    entry: dict[str, object] = {"original_event": original, "error": error, "timestamp": timestamp}
    if delivery_count is not None:
        entry["delivery_count"] = delivery_count
    return orjson.dumps(entry) + b"\n"


class DeadLetterQueue:
    def __init__(
        self,
        sink: Sink | None,
        *,
        buffer_size: int,
        metrics: Metrics,
        backoff_base_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        """The backoff between writes is the sinks' (`--sink-backoff-base-ms`, `--sink-backoff-max-ms`)."""
        self.sink = sink
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.metrics = metrics
        self.queue: asyncio.Queue[tuple[bytes, AckToken, Callable[[], None], str | None]] = asyncio.Queue(
            maxsize=buffer_size
        )
        self._holding = Throttle()

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
        await self.queue.put((dlq_entry(original, error, delivery_count), token, done, msg_id))

    @property
    def configured(self) -> bool:
        """Whether entries are written somewhere (`--dlq`), rather than only logged."""
        return self.sink is not None

    async def run(self) -> None:
        while True:
            data, token, done, msg_id = await self.queue.get()
            if await self._write(data, token, msg_id):
                done()
            else:
                token.redeliver()
            self.queue.task_done()

    async def _write(self, data: bytes, token: AckToken, msg_id: str | None) -> bool:
        """Whether the entry was written; False once a redeliverable event has used up its retries.
        Any other event is retried until the write succeeds."""
        assert self.sink is not None
        attempt = 0
        while True:
            try:
                await self.sink.write(data, msg_id)
                if attempt > DLQ_RETRY_MAX:
                    log.warning(
                        "DLQ write succeeded; the held event is dead-lettered", extra={"attempt": attempt + 1}
                    )
                return True
            except OSError as e:
                error = str(e)
            attempt += 1
            if attempt <= DLQ_RETRY_MAX:
                log.error("DLQ write failed", extra={"attempt": attempt, "error": error})
            else:
                if attempt == DLQ_RETRY_MAX + 1:
                    self.metrics.dlq_write_failures.inc()
                if token.redeliverable:
                    log.error(
                        "DLQ write failed; the event is handed back to its source for redelivery",
                        extra={"attempt": attempt, "error": error, "delivery_count": token.delivery_count},
                    )
                    return False
                if self._holding.ready():
                    log.warning(
                        "DLQ write failed; holding the event until it is written (its source cannot "
                        "redeliver it), input waits meanwhile",
                        extra={"attempt": attempt, "error": error, "delivery_count": token.delivery_count},
                    )
            token.hold()  # JetStream must not time the message out while it is retried
            await asyncio.sleep(backoff_s(attempt, self.backoff_base_s, self.backoff_max_s))
