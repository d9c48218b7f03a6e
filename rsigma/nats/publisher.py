"""Publishing results and dead-letter entries to JetStream, delivered only once the server acks.

Each result is one message. When the event came with a stable source id (its JetStream stream
sequence), the message carries `Nats-Msg-Id: <source id>:<result index>`, so the server's duplicate
window drops the copies a redelivered event would publish again.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from nats.errors import Error as NatsError

from rsigma.daemon.ack import Delivery
from rsigma.daemon.metrics import Metrics
from rsigma.nats.auth import NatsAuth
from rsigma.nats.connection import connect, ensure_stream
from rsigma.nats.lifecycle import ConnectionWatch
from rsigma.nats.names import parse_nats_url

log = logging.getLogger("rsigma.daemon")

PUBLISH_TIMEOUT_S: Final = 5.0


class NatsPublisher:
    name = "nats"

    def __init__(self, nc: Any, subject: str, watch: ConnectionWatch) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.subject = subject
        self.watch = watch

    @classmethod
    async def open(
        cls, url: str, flag: str, *, auth: NatsAuth, metrics: Metrics | None = None
    ) -> NatsPublisher:
        target = parse_nats_url(url, flag)
        role = "dlq" if flag == "--dlq" else f"output {target.subject}"
        watch = ConnectionWatch(role, target.server, metrics)
        nc = await connect(target, flag, url, auth=auth, **watch.callbacks())
        watch.connected()
        try:
            await ensure_stream(nc.jetstream(), target.subject, flag, url)
        except BaseException:
            await nc.close()
            raise
        return cls(nc, target.subject, watch)

    async def _publish(self, payload: bytes, msg_id: str | None) -> None:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        try:
            await self.js.publish(self.subject, payload, headers=headers, timeout=PUBLISH_TIMEOUT_S)
        except (TimeoutError, NatsError) as e:
            raise OSError(f"publish to {self.subject} failed: {e or type(e).__name__}") from e

    async def deliver(self, batch: list[Delivery]) -> None:
        for delivery in batch:
            for i, line in enumerate(delivery.lines):
                msg_id = f"{delivery.source_id}:{i}" if delivery.source_id else None
                await self._publish(line.rstrip(b"\n"), msg_id)

    async def write(self, data: bytes) -> None:
        """Dead-letter entries: one message per line."""
        for line in data.splitlines():
            await self._publish(line, None)

    async def aclose(self) -> None:
        await self.nc.close()  # every publish was already acknowledged by the server
