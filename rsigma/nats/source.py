"""The JetStream source: a durable pull consumer whose messages are acknowledged only when done.

A message is acked when its ack token resolves: every sink delivered every result, or the event or
its results reached the dead-letter queue (see `daemon/ack.py`). Until then JetStream holds it, and
redelivers it after `ack_wait` if the daemon dies. Several daemons with the same consumer group
share one durable consumer, and JetStream spreads the messages among them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig

from rsigma.nats.connection import connect, ensure_stream
from rsigma.nats.names import consumer_name, parse_nats_url

log = logging.getLogger("rsigma.daemon")

FETCH_WAIT_S: Final = 1.0


class NatsSource:
    def __init__(self, nc: Any, sub: Any, stream: str, consumer: str) -> None:
        self.nc = nc
        self.sub = sub
        self.stream = stream
        self.consumer = consumer

    @classmethod
    async def open(cls, url: str, *, group: str | None, ack_wait_s: float, max_deliver: int) -> NatsSource:
        target = parse_nats_url(url, "--input")
        nc = await connect(target, "--input", url)
        try:
            js = nc.jetstream()
            stream = await ensure_stream(js, target.subject, "--input", url)
            durable = consumer_name(target.subject, group)
            config = ConsumerConfig(
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ack_wait_s,
                max_deliver=max_deliver,
                filter_subject=target.subject,
            )
            sub = await js.pull_subscribe(target.subject, durable=durable, stream=stream, config=config)
        except BaseException:
            await nc.close()
            raise
        return cls(nc, sub, stream, durable)

    async def messages(self, batch: int) -> AsyncIterator[Any]:
        """Messages as they come, forever; fetch errors are logged and retried (the client reconnects)."""
        while True:
            try:
                msgs = await self.sub.fetch(batch, timeout=FETCH_WAIT_S)
            except TimeoutError:
                continue
            except NatsError as e:
                log.warning("NATS fetch failed; retrying", extra={"error": str(e) or type(e).__name__})
                await asyncio.sleep(FETCH_WAIT_S)
                continue
            for msg in msgs:
                yield msg

    def source_id(self, msg: Any) -> str:
        return f"{self.stream}:{msg.metadata.sequence.stream}"

    async def aclose(self) -> None:
        """Flush the acks already sent, then close; unacknowledged messages are redelivered later."""
        try:
            await self.nc.flush(timeout=2)
        finally:
            await self.nc.close()
