"""The test server itself: JetStream answers on loopback, and a server without JetStream does not."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

from rsigma.nats.names import stream_name
from tests.support import NatsServer

#: What nats-py raises when the server answers but has no JetStream (the daemon must exit 3 then).
JETSTREAM_UNAVAILABLE = (ServiceUnavailableError, NoStreamResponseError, NoRespondersError, NatsTimeout)


def test_jetstream_publish_ack_and_pull(nats_server):
    async def scenario() -> list[bytes]:
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream()
            await js.add_stream(name=stream_name("events.>"), subjects=["events.>"])
            ack = await js.publish("events.win", b'{"EventID": 1}', headers={"Nats-Msg-Id": "1"})
            dup = await js.publish("events.win", b'{"EventID": 1}', headers={"Nats-Msg-Id": "1"})
            assert (ack.seq, dup.duplicate) == (1, True)
            sub = await js.pull_subscribe("events.>", durable="rsigma-daemon-events")
            msgs = await sub.fetch(1, timeout=2)
            for m in msgs:
                await m.ack()
            return [m.data for m in msgs]
        finally:
            await nc.close()

    assert asyncio.run(scenario()) == [b'{"EventID": 1}']


def test_server_without_jetstream_is_detectable(tmp_path):
    server = NatsServer(tmp_path, jetstream=False).start()

    async def scenario() -> None:
        nc = await nats.connect(server.url)
        try:
            with pytest.raises(JETSTREAM_UNAVAILABLE):
                await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
