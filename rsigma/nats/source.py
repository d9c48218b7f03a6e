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
from datetime import UTC, datetime
from typing import Any, Final

from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from rsigma.daemon.metrics import Metrics
from rsigma.daemon.state import Replay
from rsigma.nats.auth import NatsAuth
from rsigma.nats.connection import connect, ensure_stream
from rsigma.nats.core import JsMessage, PullConsumer
from rsigma.nats.lifecycle import ConnectionWatch
from rsigma.nats.names import consumer_name, parse_nats_url

log = logging.getLogger("rsigma.daemon")

#: Messages per pull request; at most twice this many wait in the process (see `PullConsumer`).
PULL_BATCH: Final = 512


class NatsSource:
    """The input side: consumer setup through nats-py's JetStream API, messages through `PullConsumer`."""

    def __init__(self, nc: Any, consumer: PullConsumer, watch: ConnectionWatch) -> None:
        self.nc = nc
        self.consumer = consumer
        self.stream = consumer.stream
        self.watch = watch
        self.info: dict[str, int] = {}  # the consumer's counters, as last polled
        watch.on_reconnect(consumer.on_reconnect)  # pull requests may have died with the connection

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        group: str | None,
        ack_wait_s: float,
        max_deliver: int,
        replay: Replay,
        auth: NatsAuth,
        metrics: Metrics | None = None,
        pull_batch: int = PULL_BATCH,
    ) -> NatsSource:
        target = parse_nats_url(url, "--input")
        watch = ConnectionWatch("input", target.server, metrics)
        nc = await connect(target, "--input", url, auth=auth, **watch.callbacks())
        watch.connected()
        try:
            js = nc.jetstream()
            stream = await ensure_stream(js, target.subject, "--input", url)
            durable = consumer_name(target.subject, group)
            await ensure_consumer(
                js,
                stream,
                target.subject,
                durable,
                ack_wait_s=ack_wait_s,
                max_deliver=max_deliver,
                replay=replay,
            )
        except BaseException:
            await nc.close()
            raise
        return cls(nc, PullConsumer(nc, stream, durable, batch=pull_batch), watch)

    def batches(self) -> AsyncIterator[list[JsMessage]]:
        """Delivered messages, a list at a time, forever (lost pull requests are renewed)."""
        return self.consumer.batches()

    def ack(self, reply: str) -> None:
        try:
            self.consumer.ack(reply)
        except NatsError as e:
            log.warning("JetStream ack failed; the message will be redelivered", extra={"error": str(e)})

    def nak(self, reply: str, delay_s: float) -> None:
        try:
            self.consumer.nak(reply, delay_s)
        except NatsError as e:
            log.warning(
                "JetStream nak failed; the message is redelivered after ack_wait", extra={"error": str(e)}
            )

    async def poll_info(self) -> dict[str, int]:
        """The consumer's backlog and redeliveries, from the server (for status and metrics)."""
        info = await self.nc.jetstream().consumer_info(self.stream, self.consumer.consumer)
        self.info = {
            "pending": info.num_pending or 0,
            "ack_pending": info.num_ack_pending or 0,
            "redelivered": info.num_redelivered or 0,
            "ack_floor": info.ack_floor.stream_seq if info.ack_floor else 0,
        }
        return self.info

    def status(self) -> dict[str, Any]:
        return {
            **self.watch.status(),
            "stream": self.stream,
            "consumer": self.consumer.consumer,
            **self.info,
        }

    async def aclose(self) -> None:
        """Send the acks already written, then close; unacknowledged messages are redelivered later."""
        try:
            await self.consumer.stop()
            if self.nc.is_connected:
                await asyncio.wait_for(self.consumer.flush(), timeout=2)
        finally:
            await self.nc.close()


def start_position(replay: Replay) -> dict[str, Any]:
    """The consumer's start settings for a replay request (a fresh consumer with none reads it all)."""
    if replay.from_latest:
        return {"deliver_policy": DeliverPolicy.LAST}
    if replay.from_sequence is not None:
        return {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": replay.from_sequence}
    if replay.from_time_ns is not None:
        moment = datetime.fromtimestamp(replay.from_time_ns / 1e9, UTC)
        return {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": moment}
    return {"deliver_policy": DeliverPolicy.ALL}


async def ensure_consumer(
    js: Any, stream: str, subject: str, durable: str, *, ack_wait_s: float, max_deliver: int, replay: Replay
) -> None:
    """Get or create the durable consumer; a replay request moves an existing one.

    JetStream cannot change where an existing consumer starts, so a replay deletes the consumer and
    creates it afresh at the requested position (RSigma silently keeps the old position). Without a
    replay flag an existing consumer resumes from its ack floor; changed ack_wait and max_deliver are
    applied in place.
    """
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=max_deliver,
        filter_subject=subject,
        **start_position(replay),
    )
    try:
        existing = await js.consumer_info(stream, durable)
    except NotFoundError:
        existing = None
    if existing is None:
        await js.add_consumer(stream, config)
        log.info("NATS consumer created", extra={"consumer": durable, "start": replay.describe()})
        return
    if replay.requested:
        await js.delete_consumer(stream, durable)
        await js.add_consumer(stream, config)
        log.info(
            "NATS consumer recreated to replay",
            extra={
                "consumer": durable,
                "start": replay.describe(),
                "previous_ack_floor": existing.ack_floor.stream_seq,
            },
        )
        return
    current = existing.config
    if current.ack_wait != ack_wait_s or current.max_deliver != max_deliver:
        config.deliver_policy = current.deliver_policy
        config.opt_start_seq = current.opt_start_seq
        config.opt_start_time = current.opt_start_time
        await js.add_consumer(stream, config)
        log.info(
            "NATS consumer updated",
            extra={"consumer": durable, "ack_wait": ack_wait_s, "max_deliver": max_deliver},
        )
    log.info(
        "NATS consumer resumes from its ack floor",
        extra={
            "consumer": durable,
            "ack_floor": existing.ack_floor.stream_seq,
            "pending": existing.num_pending,
        },
    )
