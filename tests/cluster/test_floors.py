"""The delivered floors in the cluster's KV bucket, on a real nats-server: written once confirmed,
kept and written later when the server is down meanwhile, never lowered by an older owner."""

from __future__ import annotations

import asyncio

import nats

from rsigma.cluster.delivery import DeliveryRounds
from rsigma.cluster.floors import FloorStore
from tests.support import NatsServer


async def connect(url: str) -> nats.NATS:
    return await nats.connect(url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)


def test_floors_not_written_during_an_outage_are_kept_and_written_afterwards(nats_server: NatsServer):
    async def outage() -> None:
        nc = await connect(nats_server.url)
        js = nc.jetstream()
        await js.create_key_value(bucket="rsigma-cluster-c1", history=1)
        rounds = DeliveryRounds()
        store = FloorStore(js, "c1", "a", rounds)
        assert await store.read([3]) == {3: 0}
        rounds.open({3: 10}, results=0)
        assert await store.flush() and store.written[3] == 10
        await asyncio.to_thread(nats_server.stop)
        rounds.open({3: 20}, results=0)
        assert not await store.flush()
        assert store.write_failures == 1 and store.written[3] == 10 and rounds.unwritten == {3: 20}
        await asyncio.to_thread(nats_server.start)
        for _ in range(100):
            if nc.is_connected:
                break
            await asyncio.sleep(0.05)
        assert await store.flush()
        again = FloorStore(js, "c1", "b", DeliveryRounds())
        assert await again.read([3]) == {3: 20}
        await nc.close()

    asyncio.run(outage())


def test_an_older_owner_never_lowers_the_floor(nats_server: NatsServer):
    async def scenario() -> None:
        nc = await connect(nats_server.url)
        js = nc.jetstream()
        await js.create_key_value(bucket="rsigma-cluster-c1", history=1)
        old_rounds, new_rounds = DeliveryRounds(), DeliveryRounds()
        old, new = FloorStore(js, "c1", "old", old_rounds), FloorStore(js, "c1", "new", new_rounds)
        await old.read([5])
        await new.read([5])
        new_rounds.open({5: 90}, results=0)
        assert await new.flush()
        old_rounds.open({5: 40}, results=0)  # its last round, delivered after the move
        assert await old.flush()
        assert await FloorStore(js, "c1", "c", DeliveryRounds()).read([5]) == {5: 90}
        await nc.close()

    asyncio.run(scenario())
