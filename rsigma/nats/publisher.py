"""Publishing results and dead-letter entries to JetStream, delivered only once the server acks.

Each result is one message. When the event came with a stable source id (its JetStream stream
sequence), the message carries `Nats-Msg-Id: <source id>:<result index>`, so the server's duplicate
window drops the copies a redelivered event would publish again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import nats
from nats.errors import Error as NatsError
from nats.js.errors import BadRequestError, NotFoundError

from rsigma.daemon.ack import Delivery
from rsigma.daemon.sinks import ConfigError
from rsigma.nats.names import NatsUrl, parse_nats_url, stream_name

log = logging.getLogger("rsigma.daemon")

CONNECT_TIMEOUT_S: Final = 5.0
PUBLISH_TIMEOUT_S: Final = 5.0


async def connect(target: NatsUrl, flag: str, url: str) -> Any:
    """A client that reconnects by itself; refusing servers without JetStream (exit 3)."""
    try:
        # The first connection must succeed in time (exit 3 otherwise); later drops reconnect forever.
        nc = await asyncio.wait_for(
            nats.connect(
                target.server,
                connect_timeout=CONNECT_TIMEOUT_S,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
            ),
            timeout=CONNECT_TIMEOUT_S,
        )
    except (TimeoutError, OSError, NatsError) as e:
        raise ConfigError(f"{flag} {url}: cannot connect to {target.server}: {e or type(e).__name__}") from e
    try:
        await nc.jetstream().account_info()
    except (TimeoutError, NatsError) as e:
        await nc.close()
        raise ConfigError(
            f"{flag} {url}: {target.server} does not offer JetStream (start it with -js)"
        ) from e
    return nc


async def ensure_stream(js: Any, subject: str, flag: str, url: str) -> str:
    """Get or create `rsigma-<subject>`; another stream covering the subject is a startup error."""
    name = stream_name(subject)
    try:
        await js.stream_info(name)
        return name
    except NotFoundError:
        pass
    try:
        await js.add_stream(name=name, subjects=[subject])
    except BadRequestError as e:
        try:
            other = await js.find_stream_name_by_subject(subject)
        except NatsError:
            other = "another stream"
        raise ConfigError(
            f"{flag} {url}: stream {other!r} already covers subject {subject!r}; rsigma would create {name!r}"
        ) from e
    return name


class NatsPublisher:
    name = "nats"

    def __init__(self, nc: Any, subject: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.subject = subject

    @classmethod
    async def open(cls, url: str, flag: str) -> NatsPublisher:
        target = parse_nats_url(url, flag)
        nc = await connect(target, flag, url)
        try:
            await ensure_stream(nc.jetstream(), target.subject, flag, url)
        except BaseException:
            await nc.close()
            raise
        return cls(nc, target.subject)

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
