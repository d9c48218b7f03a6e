"""Publishing results and dead-letter entries to JetStream, delivered only once the server acks.

Each result is one message. When the event came with a stable source id (its JetStream stream
sequence), the message carries `Nats-Msg-Id: <source id>:<result index>`, so the server's duplicate
window drops the copies a redelivered event would publish again.
"""

from __future__ import annotations

from typing import Any, Final

from rsigma.daemon.ack import Delivery
from rsigma.daemon.connection_watch import ConnectionWatch
from rsigma.daemon.metrics import Metrics
from rsigma.nats.auth import NatsAuth
from rsigma.nats.connection import ONE_ATTEMPT, ConnectWait, connect, ensure_stream, startup_request
from rsigma.nats.core import AsyncPublisher
from rsigma.nats.names import parse_nats_url
from rsigma.output_format import LineFormat

PUBLISH_TIMEOUT_S: Final = 5.0


class NatsSink:
    """A sink that counts a batch as delivered once the stream acknowledged every message of it."""

    name = "nats"

    def __init__(
        self, nc: Any, subject: str, watch: ConnectionWatch, encode: LineFormat | None = None
    ) -> None:
        self.nc = nc
        self.subject = subject
        self.encode = encode  # the results' format (None: the native lines)
        self.watch = watch
        self.publisher = AsyncPublisher(nc, timeout_s=PUBLISH_TIMEOUT_S)
        watch.on_reconnect(self.publisher.reconnected)  # retry at once, not after PUBLISH_TIMEOUT_S

    @classmethod
    async def open(
        cls,
        url: str,
        flag: str,
        *,
        auth: NatsAuth,
        wait: ConnectWait = ONE_ATTEMPT,
        metrics: Metrics | None = None,
        encode: LineFormat | None = None,
    ) -> NatsSink:
        target = parse_nats_url(url, flag)
        role = "dlq" if flag == "--dlq" else f"output {target.subject}"
        watch = ConnectionWatch(role, target.server, metrics)
        nc = await connect(target, flag, url, auth=auth, wait=wait, **watch.callbacks())
        watch.connected()
        try:
            stream = ensure_stream(nc.jetstream(), target.subject, flag, url)
            await startup_request(nc, flag, url, stream, f"cannot set up the stream on {target.server}")
        except BaseException:
            await nc.close()
            raise
        return cls(nc, target.subject, watch, encode)

    async def deliver(self, batch: list[Delivery]) -> None:
        """Every result of the batch, with `Nats-Msg-Id: <stream>:<sequence>:<result index>` when the
        event has a stable source id; raises OSError (the sink worker retries) on any failure."""
        items = []
        encode = self.encode
        for d in batch:
            source = d.token.source_id  # derived only for events that have results
            for i, line in enumerate(d.lines):
                data = encode(line) if encode else line
                items.append((data.rstrip(b"\n"), f"{source}:{i}" if source else None))
        await self.publisher.publish_many(self.subject, items)

    async def write(self, data: bytes, msg_id: str | None = None) -> None:
        """A dead-letter entry (one line), with `Nats-Msg-Id: msg_id` when the event has a source id:
        `<stream>:<sequence>:dlq`, plus `:<sink>` for results a sink gave up on."""
        await self.publisher.publish_many(self.subject, [(data.rstrip(b"\n"), msg_id)])

    def status(self) -> dict[str, Any]:
        return {self.watch.role: self.watch.status()}

    async def aclose(self) -> None:
        await self.publisher.close()
        await self.nc.close()  # every delivered batch was already acknowledged by the server
