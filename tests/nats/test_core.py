"""`rsigma.nats.core`: pulling, acking and publishing on nats-py's core connection, against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from rsigma.nats import core, internals
from rsigma.nats.core import AckMetadata, AsyncPublisher, PullConsumer, delivery_position, parse_ack_subject
from tests.support import NatsServer

Body = Callable[[Any, Any], Awaitable[None]]


def with_jetstream(url: str, body: Body, **options: Any) -> None:
    """Run `body(nc, js)` on a fresh connection, closed afterwards."""

    async def go() -> None:
        nc = await nats.connect(url, **options)
        try:
            await body(nc, nc.jetstream())
        finally:
            await nc.close()

    asyncio.run(go())


async def stream_with(js: Any, nc: Any, count: int, *, stream: str = "EV", subject: str = "ev") -> None:
    """A stream holding `count` messages b"0", b"1", ... (core publishes: no ack round trips)."""
    await js.add_stream(name=stream, subjects=[subject])
    for i in range(count):
        await nc.publish(subject, str(i).encode())
    await nc.flush()
    while (await js.stream_info(stream)).state.messages < count:
        await asyncio.sleep(0.01)


async def durable(js: Any, name: str = "c", *, stream: str = "EV", ack_wait: float = 30) -> None:
    await js.add_consumer(
        stream, ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait)
    )


async def settled(js: Any, stream: str, consumer: str) -> Any:
    """Consumer info once the server processed the acks it received (it does so asynchronously)."""
    for _ in range(50):
        info = await js.consumer_info(stream, consumer)
        if info.num_ack_pending == 0:
            break
        await asyncio.sleep(0.02)
    return info


async def consume(consumer: PullConsumer, count: int, *, ack: bool = True, timeout: float = 10) -> list[Any]:
    got: list[Any] = []

    async def loop() -> None:
        async for msgs in consumer.batches():
            for m in msgs:
                if ack:
                    consumer.ack(m.reply)
            got.extend(msgs)
            if len(got) >= count:
                return

    await asyncio.wait_for(loop(), timeout)
    return got


# -- ack subjects ---------------------------------------------------------------------------------


def test_parse_ack_subject_old_form():
    meta = parse_ack_subject("$JS.ACK.EVENTS.rsigma.2.1042.17.1714560000123456789.8")
    assert meta == AckMetadata("EVENTS", "rsigma", 2, 1042, 17, 1714560000123456789, 8)
    assert meta.domain == ""


def test_parse_ack_subject_new_form_with_domain_and_account_hash():
    reply = "$JS.ACK.hub.ACCHASH123.EVENTS.rsigma.1.5.4.1714560000123456789.0.r4nd0m"
    assert parse_ack_subject(reply) == AckMetadata("EVENTS", "rsigma", 1, 5, 4, 1714560000123456789, 0, "hub")
    no_domain = "$JS.ACK._.ACCHASH123.EVENTS.rsigma.1.5.4.1714560000123456789.0.r4nd0m"
    assert parse_ack_subject(no_domain).domain == ""


def test_delivery_position_agrees_with_the_full_parse_on_both_forms():
    old = "$JS.ACK.EVENTS.rsigma.2.1042.17.1714560000123456789.8"
    new = "$JS.ACK.hub.ACCHASH123.EVENTS.rsigma.3.5.4.1714560000123456789.0.r4nd0m"
    assert delivery_position(old) == (1042, 2, 1714560000123456789)
    assert delivery_position(new) == (5, 3, 1714560000123456789)
    with pytest.raises(ValueError):
        delivery_position("$JS.API.S.c.1.2.3.4.5")


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "_INBOX.abc",
        "$JS.ACK.S.c.1.2.3",
        "$JS.ACK.S.c.x.2.3.4.5",
        "$JS.API.S.c.1.2.3.4.5",
        "$JS.ACK.a.b.c.d.e.f.g.h",
    ],
)
def test_parse_ack_subject_refuses_other_subjects(reply):
    with pytest.raises(ValueError, match="not a JetStream ack subject"):
        parse_ack_subject(reply)


# -- pulling --------------------------------------------------------------------------------------


def test_consumes_and_acks_everything_in_order(nats_server):
    async def body(nc: Any, js: Any) -> None:
        await stream_with(js, nc, 10_000)
        await durable(js)
        consumer = PullConsumer(nc, "EV", "c", batch=512)
        msgs = await consume(consumer, 10_000)
        await consumer.flush()
        assert [m.data for m in msgs] == [str(i).encode() for i in range(10_000)]
        assert [m.metadata.stream_seq for m in msgs[:3]] == [1, 2, 3]
        assert msgs[-1].metadata == AckMetadata(
            "EV", "c", 1, 10_000, 10_000, msgs[-1].metadata.timestamp_ns, 0
        )
        assert consumer.num_pending == 0
        info = await settled(js, "EV", "c")
        assert (info.num_ack_pending, info.num_pending, info.delivered.consumer_seq) == (0, 0, 10_000)
        assert info.num_redelivered == 0
        await consumer.stop()

    with_jetstream(nats_server.url, body)


def test_unacked_messages_come_back_after_ack_wait(nats_server):
    async def body(nc: Any, js: Any) -> None:
        await stream_with(js, nc, 5)
        await durable(js, ack_wait=1)
        consumer = PullConsumer(nc, "EV", "c", batch=16, expires_s=1)
        first = await consume(consumer, 5, ack=False)
        for m in first[:2]:
            consumer.ack(m.reply)
        again = await consume(consumer, 3, timeout=5)
        await consumer.flush()
        await consumer.stop()
        assert [m.data for m in again] == [b"2", b"3", b"4"]
        assert {m.metadata.delivered for m in again} == {2}
        info = await settled(js, "EV", "c")
        assert (info.num_ack_pending, info.num_redelivered) == (0, 0)

    with_jetstream(nats_server.url, body)


def test_a_consumer_that_stops_reading_stops_the_pulling(nats_server):
    batch = 50

    async def body(nc: Any, js: Any) -> None:
        await stream_with(js, nc, 2_000)
        await durable(js)
        consumer = PullConsumer(nc, "EV", "c", batch=batch)
        batches = consumer.batches()
        taken = await asyncio.wait_for(anext(batches), 5)  # then nobody reads
        await asyncio.sleep(0.5)
        assert consumer.buffered <= 2 * batch
        info = await js.consumer_info("EV", "c")
        assert info.num_ack_pending <= len(taken) + 2 * batch
        assert info.num_pending >= 2_000 - len(taken) - 2 * batch
        # Reading again resumes the flow until the stream is drained.
        seen = len(taken)
        async for msgs in batches:
            assert len(msgs) <= 2 * batch
            for m in msgs:
                consumer.ack(m.reply)
            seen += len(msgs)
            if seen >= 2_000:
                break
        await consumer.stop()
        assert seen == 2_000

    with_jetstream(nats_server.url, body)


def test_expired_pull_requests_are_renewed(nats_server):
    async def body(nc: Any, js: Any) -> None:
        await js.add_stream(name="EV", subjects=["ev"])
        await durable(js)
        consumer = PullConsumer(nc, "EV", "c", batch=10, expires_s=0.4)
        task = asyncio.ensure_future(consume(consumer, 3))
        await asyncio.sleep(1.0)  # two expiries: 408 Request Timeout, pulled again
        assert consumer.last_status == "408 Request Timeout"
        for i in range(3):
            await js.publish("ev", b"late %d" % i)
        assert [m.data for m in await task] == [b"late 0", b"late 1", b"late 2"]
        await consumer.stop()

    with_jetstream(nats_server.url, body)


def test_consumption_survives_a_server_restart(tmp_path):
    server = NatsServer(tmp_path).start()
    consumer: PullConsumer | None = None

    async def reconnected() -> None:
        if consumer is not None:
            consumer.on_reconnect()

    async def body(nc: Any, js: Any) -> None:
        nonlocal consumer
        await stream_with(js, nc, 100)
        await durable(js, ack_wait=1)  # the restarted server may have lost the last acks: redelivered
        consumer = PullConsumer(nc, "EV", "c", batch=10, expires_s=1)
        seen = {int(m.data) for m in await consume(consumer, 10)}
        await consumer.flush()
        server.stop()
        server.start()  # same port and store: the stream and consumer are still there
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                seen |= {int(m.data) for m in await consume(consumer, 1, timeout=0.5)}
            await consumer.flush()
            info = await js.consumer_info("EV", "c")
            if (info.num_pending, info.num_ack_pending) == (0, 0):
                break
        assert (info.num_pending, info.num_ack_pending) == (0, 0)
        assert seen == set(range(100))
        await consumer.stop()

    try:
        with_jetstream(
            server.url, body, reconnected_cb=reconnected, reconnect_time_wait=0.1, max_reconnect_attempts=-1
        )
    finally:
        server.stop()


def test_acking_on_a_closed_connection_is_an_error(nats_server):
    async def go() -> None:
        nc = await nats.connect(nats_server.url)
        consumer = PullConsumer(nc, "EV", "c")
        await nc.close()
        with pytest.raises(nats.errors.ConnectionClosedError):
            consumer.ack("$JS.ACK.EV.c.1.1.1.1.0")

    asyncio.run(go())


# -- publishing -----------------------------------------------------------------------------------


def test_publishes_arrive_in_the_stream_in_order(nats_server):
    async def body(nc: Any, js: Any) -> None:
        await js.add_stream(name="OUT", subjects=["out"])
        publisher = AsyncPublisher(nc, max_pending=300)  # fewer than a call: writes wait for acks
        items = [(b"%d" % i, f"id-{i}") for i in range(5_000)]
        for start in range(0, 5_000, 1_000):
            await publisher.publish_many("out", items[start : start + 1_000])
        assert publisher.outstanding == 0
        await publisher.publish("out", b"single")
        await publisher.close()
        assert (await js.stream_info("OUT")).state.messages == 5_001
        await durable(js, stream="OUT")
        consumer = PullConsumer(nc, "OUT", "c", batch=1_000)
        got = await consume(consumer, 5_001)
        await consumer.stop()
        assert [m.data for m in got] == [p for p, _ in items] + [b"single"]
        assert got[0].headers == {"Nats-Msg-Id": "id-0"}

    with_jetstream(nats_server.url, body)


def test_the_stream_drops_duplicate_message_ids(nats_server):
    async def body(nc: Any, js: Any) -> None:
        await js.add_stream(name="OUT", subjects=["out"])
        publisher = AsyncPublisher(nc)
        await publisher.publish_many("out", [(b"first", "same-id"), (b"second", "same-id")])
        await publisher.publish("out", b"third", msg_id="same-id")
        await publisher.close()
        info = await js.stream_info("OUT")
        assert info.state.messages == 1
        assert (await js.get_msg("OUT", 1)).data == b"first"

    with_jetstream(nats_server.url, body)


def test_publishing_where_no_stream_listens_is_an_error(nats_server):
    async def body(nc: Any, js: Any) -> None:
        publisher = AsyncPublisher(nc)
        with pytest.raises(OSError, match="no JetStream stream stores this subject"):
            await publisher.publish_many("nowhere", [(b"x", None), (b"y", None)])
        with pytest.raises(ValueError, match="not a concrete NATS subject"):
            await publisher.publish("out.*", b"x")
        assert publisher.outstanding == 0
        await publisher.close()

    with_jetstream(nats_server.url, body)


def test_a_refused_publish_reports_the_servers_reason(nats_server):
    async def body(nc: Any, js: Any) -> None:
        await js.add_stream(name="OUT", subjects=["out"], max_msg_size=10)
        publisher = AsyncPublisher(nc)
        with pytest.raises(OSError, match="refused by JetStream: message size exceeds maximum allowed"):
            await publisher.publish_many("out", [(b"small", None), (b"far too large for it", None)])
        await publisher.close()

    with_jetstream(nats_server.url, body)


def test_a_stopped_server_fails_the_publish(nats_server):
    async def body(nc: Any, js: Any) -> None:
        await js.add_stream(name="OUT", subjects=["out"])
        publisher = AsyncPublisher(nc, timeout_s=0.5)
        await publisher.publish_many("out", [(b"before", None)])
        nats_server.stop()
        # It fails instead of waiting for the server (how soon is not asserted: a loaded machine).
        with pytest.raises(OSError, match="publish to 'out'"):
            await asyncio.wait_for(
                publisher.publish_many("out", [(b"after %d" % i, None) for i in range(100)]), 60
            )
        await publisher.close()

    with_jetstream(nats_server.url, body, max_reconnect_attempts=1, reconnect_time_wait=0.1)


# -- the nats-py internals rsigma.nats.core relies on ---------------------------------------------


def test_nats_py_internals_are_as_relied_on(nats_server):
    """If this fails, nats-py changed what `core._write` and `internals.MessageSink` build on."""
    assert (Client.DISCONNECTED, Client.CONNECTED, Client.CLOSED, Client.RECONNECTING) == (0, 1, 2, 3)
    assert (Client.CONNECTING, Client.DRAINING_SUBS, Client.DRAINING_PUBS) == (4, 5, 6)

    async def body(nc: Any, js: Any) -> None:
        assert nc._status == Client.CONNECTED
        assert isinstance(nc._pending, list) and isinstance(nc._pending_data_size, int)
        assert nc._max_pending_size > 0
        assert isinstance(nc._flush_queue, asyncio.Queue)
        assert isinstance(nc._flusher_task, asyncio.Task) and not nc._flusher_task.done()
        assert nc._transport is not None
        # subscribe(future=...) hands every message to future.set_result, synchronously, in order.
        got: list[bytes] = []
        sub = await nc.subscribe("pin.>", future=internals.MessageSink(lambda msg: got.append(msg.data)))
        # _write's commands reach the server through nats-py's flusher task, once it runs.
        for i in range(3):
            core._write(nc, b"PUB pin.x %d\r\n%d\r\n" % (len(str(i)), i))
        assert nc._pending_data_size > 0 and nc._flush_queue.qsize() == 1
        await asyncio.sleep(0)
        await nc.flush()
        assert got == [b"0", b"1", b"2"]
        assert nc._pending == [] and nc._pending_data_size == 0
        await sub.unsubscribe()
        core._write(nc, b"PUB pin.x 1\r\n9\r\n")
        await asyncio.sleep(0)
        await nc.flush()
        assert got == [b"0", b"1", b"2"]

    with_jetstream(nats_server.url, body)


def test_writes_while_reconnecting_are_buffered_and_sent_after(tmp_path):
    server = NatsServer(tmp_path).start()

    async def body(nc: Any, js: Any) -> None:
        got: list[bytes] = []
        await nc.subscribe("pin.x", future=internals.MessageSink(lambda msg: got.append(msg.data)))
        server.stop()
        while not nc.is_reconnecting:
            await asyncio.sleep(0.01)
        core._write(nc, b"PUB pin.x 5\r\nlater\r\n")
        assert nc._pending[-1] == b"PUB pin.x 5\r\nlater\r\n"
        server.start()
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert got == [b"later"]

    try:
        with_jetstream(server.url, body, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
    finally:
        server.stop()
