"""The `cluster` status section and the cluster metrics, from members on a real nats-server."""

from __future__ import annotations

import asyncio
import os
import socket

import nats

from rsigma.cluster.membership import Membership
from rsigma.cluster.status import cluster_status
from rsigma.daemon.metrics import Metrics
from tests.support import NatsServer
from tests.support.metrics import parse_metrics, sample


def test_status_and_metrics_follow_the_members(nats_server: NatsServer):
    async def scenario() -> None:
        nc = await nats.connect(nats_server.url)
        metrics = Metrics()
        first = Membership(nc.jetstream(), "shop", 8, member_id="a", heartbeat_s=0.25, api="127.0.0.1:9090")
        first.on_rebalance(
            lambda: metrics.cluster_rebalanced(len(first.members), len(first.owned()), first.rebalances)
        )
        second = Membership(nc.jetstream(), "shop", 8, member_id="b", heartbeat_s=0.25)
        try:
            await first.start()
            alone = parse_metrics(metrics.render().decode())
            assert sample(alone, "rsigma_cluster_members") == 1
            assert sample(alone, "rsigma_cluster_owned_partitions") == 8
            assert sample(alone, "rsigma_cluster_rebalances_total") == 0
            await second.start()
            for _ in range(500):
                if first.members == ("a", "b"):
                    break
                await asyncio.sleep(0.02)
            status = cluster_status(first)
            assert status["name"] == "shop" and status["member"] == "a" and status["partitions"] == 8
            assert [m["id"] for m in status["members"]] == ["a", "b"]
            me = status["members"][0]
            assert me["host"] == socket.gethostname() and me["pid"] == os.getpid()
            assert me["api"] == "127.0.0.1:9090" and status["members"][1]["api"] is None
            assert status["owned_partitions"] == sorted(first.owned()) and status["rebalances"] == 1
            assert status["kv"] == "ok" and status["member_ttl_seconds"] == 1
            both = parse_metrics(metrics.render().decode())
            assert sample(both, "rsigma_cluster_members") == 2
            assert sample(both, "rsigma_cluster_owned_partitions") == len(first.owned()) < 8
            assert sample(both, "rsigma_cluster_rebalances_total") == 1
        finally:
            await second.stop()
            await first.stop()
            await nc.close()

    asyncio.run(scenario())
