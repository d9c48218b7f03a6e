"""The JetStream source: a durable pull consumer whose messages are acknowledged only when done.

A message is acked when its ack token resolves: every sink delivered every result, or the event or
its results reached the dead-letter queue (see `daemon/ack.py`). Until then JetStream holds it, and
redelivers it after `ack_wait` if the daemon dies. Several daemons with the same consumer group
share one durable consumer, and JetStream spreads the messages among them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, Final

from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from rsigma.daemon.ack import AckToken, InFlight, RawEvent
from rsigma.daemon.connection_watch import ConnectionWatch
from rsigma.daemon.metrics import Metrics
from rsigma.daemon.position import AckFloor
from rsigma.daemon.sources.base import Emit
from rsigma.daemon.state import Position, Replay
from rsigma.nats.auth import NatsAuth
from rsigma.nats.connection import ONE_ATTEMPT, ConnectWait, connect, ensure_stream, startup_request
from rsigma.nats.core import PullConsumer, delivery_position
from rsigma.nats.names import consumer_name, parse_nats_url

log = logging.getLogger("rsigma.daemon")

#: Messages per pull request; at most twice this many wait in the process (see `PullConsumer`).
PULL_BATCH: Final = 512
#: Messages delivered and not yet acked that JetStream allows the consumer (its default, 1,000, is
#: fewer than the daemon's queues and a worker pool hold at once, and would starve them).
MAX_ACK_PENDING: Final = 50_000
#: Seconds between polls of the consumer's backlog (for status and metrics).
CONSUMER_POLL_S: Final = 2.0


#: A message handed back after a sink gave up is redelivered after this many seconds per delivery so far.
NAK_DELAY_BASE_S: Final = 1.0
NAK_DELAY_MAX_S: Final = 30.0


class JetStreamToken(AckToken):
    """A message's ack token: acks it when done; naks it while JetStream can still redeliver it."""

    __slots__ = ("_delivered", "_last", "_reply", "_sequence", "_source")

    def __init__(
        self, tracker: InFlight, source: NatsSource, reply: str, sequence: int, delivered: int
    ) -> None:
        super().__init__(tracker)
        self._source = source
        self._reply = reply
        self._sequence = sequence
        self._delivered = delivered
        self._last = delivered >= source.max_deliver

    @property
    def redeliverable(self) -> bool:
        return not self._last

    @property
    def source_id(self) -> str:
        return f"{self._source.stream}:{self._sequence}"

    @property
    def source_sequence(self) -> int:
        return self._sequence

    @property
    def delivery_count(self) -> int:
        return self._delivered

    def _acked(self) -> None:
        self._source.ack(self._reply, self._sequence)

    def _redeliver(self) -> None:
        self._source.nak(self._reply, min(NAK_DELAY_BASE_S * self._delivered, NAK_DELAY_MAX_S))

    def _hold(self) -> None:
        self._source.in_progress(self._reply)


class NatsSource:
    """The input side: consumer setup through nats-py's JetStream API, messages through `PullConsumer`.

    It also keeps the contiguous ack floor of what it received (`floor`), the position a state
    snapshot reflects.
    """

    def __init__(
        self,
        nc: Any,
        consumer: PullConsumer,
        watch: ConnectionWatch,
        *,
        max_deliver: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.nc = nc
        self.consumer = consumer
        self.stream = consumer.stream
        self.watch = watch
        self.max_deliver = max_deliver
        self.metrics = metrics
        self.floor = AckFloor()
        self.redelivered = 0  # messages received that JetStream had delivered before
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
        wait: ConnectWait = ONE_ATTEMPT,
        metrics: Metrics | None = None,
        pull_batch: int = PULL_BATCH,
    ) -> NatsSource:
        target = parse_nats_url(url, "--input")
        watch = ConnectionWatch("input", target.server, metrics)
        nc = await connect(target, "--input", url, auth=auth, wait=wait, **watch.callbacks())
        watch.connected()
        durable = consumer_name(target.subject, group)

        async def set_up() -> str:
            js = nc.jetstream()
            stream = await ensure_stream(js, target.subject, "--input", url)
            await ensure_consumer(
                js,
                stream,
                target.subject,
                durable,
                ack_wait_s=ack_wait_s,
                max_deliver=max_deliver,
                replay=replay,
            )
            return stream

        try:
            failed = f"cannot set up the stream and consumer on {target.server}"
            stream = await startup_request(nc, "--input", url, set_up(), failed)
        except BaseException:
            await nc.close()
            raise
        consumer = PullConsumer(nc, stream, durable, batch=pull_batch)
        return cls(nc, consumer, watch, max_deliver=max_deliver, metrics=metrics)

    @property
    def state(self) -> str:
        return self.watch.state

    @property
    def position(self) -> Position | None:
        return self.floor.floor

    async def run(self, emit: Emit, inflight: InFlight) -> None:
        """Delivered messages as raw events with their tokens, a pulled batch at a time, until
        cancelled; the consumer's backlog is polled meanwhile."""
        poller = asyncio.create_task(self._poll_consumer(), name="consumer-info")
        floor = self.floor
        try:
            async for msgs in self.consumer.batches():
                events: list[RawEvent] = []
                for msg in msgs:
                    reply = msg.reply
                    sequence, delivered, timestamp_ns = delivery_position(reply)
                    floor.received(sequence, timestamp_ns)
                    if delivered > 1:
                        self._count_redelivery()
                    events.append(
                        RawEvent(msg.data, JetStreamToken(inflight, self, reply, sequence, delivered))
                    )
                await emit(events)
        finally:
            poller.cancel()

    async def _poll_consumer(self) -> None:
        """The backlog for status and metrics; a failed poll (e.g. while disconnected) waits."""
        while True:
            try:
                info = await self.poll_info()
            except (TimeoutError, NatsError) as e:
                log.debug("consumer info unavailable", extra={"error": str(e) or type(e).__name__})
            else:
                if self.metrics is not None:
                    self.metrics.nats_consumer_pending.set(info["pending"])
                    self.metrics.nats_ack_pending.set(info["ack_pending"])
            await asyncio.sleep(CONSUMER_POLL_S)

    def _count_redelivery(self) -> None:
        self.redelivered += 1
        if self.metrics is not None:
            self.metrics.nats_redelivered.inc()

    def ack(self, reply: str, sequence: int) -> None:
        try:
            self.consumer.ack(reply)
        except NatsError as e:
            log.warning("JetStream ack failed; the message will be redelivered", extra={"error": str(e)})
            return
        self.floor.finished(sequence)

    def nak(self, reply: str, delay_s: float) -> None:
        if self.metrics is not None:
            self.metrics.nats_naks.inc()
        try:
            self.consumer.nak(reply, delay_s)
        except NatsError as e:
            log.warning(
                "JetStream nak failed; the message is redelivered after ack_wait", extra={"error": str(e)}
            )

    def in_progress(self, reply: str) -> None:
        try:
            self.consumer.in_progress(reply)
        except NatsError as e:
            log.warning("JetStream in-progress ack failed", extra={"error": str(e)})

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
            "redelivered_received": self.redelivered,
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
    js: Any,
    stream: str,
    subject: str,
    durable: str,
    *,
    ack_wait_s: float,
    max_deliver: int,
    replay: Replay,
    max_ack_pending: int = MAX_ACK_PENDING,
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
        max_ack_pending=max_ack_pending,
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
    wanted = (ack_wait_s, max_deliver, max_ack_pending)
    if (current.ack_wait, current.max_deliver, current.max_ack_pending) != wanted:
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
