"""A `--cluster` of daemons on the three-node JetStream cluster of `deploy/nats/cluster` (real
nats-servers on loopback), the streams and the cluster's own hits stream and KV bucket with three
replicas: one NATS server stopped mid-stream, then started again, changes no result. The members
reconnect to the servers left (discovered from the cluster), JetStream elects new stream leaders,
and the deduplicating output stream ends up with one plain daemon's results: none lost, none twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from tests.support import DaemonProcess, wait_until
from tests.support.cluster import (
    HEARTBEAT,
    OUTPUT,
    PROPERTY_TYPES,
    correlation_kinds,
    lines,
    output_stream,
    property_stream,
    split,
)
from tests.support.nats_client import ack_floor, publish
from tests.support.nats_cluster import NatsCluster, add_replicated_stream

EVENTS = 300


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path / "nats") as cluster:
        yield cluster


def test_a_nats_server_stopped_mid_stream_changes_no_result(property_daemons, nats_cluster):
    daemons = property_daemons
    started = time.monotonic()
    urls = [s.url for s in nats_cluster.servers]
    add_replicated_stream(urls[0], "rsigma-events", ["events"])
    add_replicated_stream(urls[0], f"rsigma-{OUTPUT}", [OUTPUT], duplicate_window=600.0)

    def member(url: str, name: str) -> DaemonProcess:
        return daemons.start(
            *("--input", f"{url}/events", "--cluster", "c1", "--output", f"{url}/{OUTPUT}"),
            *("--cluster-heartbeat", HEARTBEAT, "--nats-ack-wait", "2", "--cluster-replicas", "3"),
            *("--cluster-member-id", name),
        )

    members = [member(urls[0], "a"), member(urls[1], "b")]
    wait_until(lambda: split(members), "the two members split the partitions", timeout=30)
    stream = property_stream(21, EVENTS)
    publish(urls[2], "events", stream[: EVENTS // 3])
    wait_until(lambda: ack_floor(urls[2], "rsigma-events", "c1") >= EVENTS // 6, "some events acked")
    nats_cluster.servers[0].stop()  # member a's server, and a leader of some streams
    publish(urls[2], "events", stream[EVENTS // 3 : 2 * EVENTS // 3])
    nats_cluster.servers[0].start()
    publish(urls[2], "events", stream[2 * EVENTS // 3 :])
    wait_until(lambda: ack_floor(urls[2], "rsigma-events", "c1") == EVENTS, "all acked", timeout=120)
    assert all(m.alive() for m in members)

    plain = daemons.start("--input", f"{urls[1]}/events", "--consumer-group", "plain")
    wait_until(lambda: ack_floor(urls[1], "rsigma-events", "plain") == EVENTS, "acked by the plain daemon")
    expected = lines(plain)
    assert all(correlation_kinds(expected)[kind] > 0 for kind in PROPERTY_TYPES)
    wait_until(lambda: output_stream(urls[1]) == expected, "one daemon's results", timeout=60)
    assert time.monotonic() - started < 600  # inside the output stream's duplicate window
    assert members[0].find_log("NATS disconnected; reconnecting") is not None  # a lost its server
    assert [replicas(urls[1], name) for name in ("rsigma-hits-c1", "KV_rsigma-cluster-c1")] == [3, 3]


def replicas(url: str, stream: str) -> int:
    async def go() -> int:
        nc = await nats.connect(url)
        try:
            return int((await nc.jetstream().stream_info(stream)).config.num_replicas or 1)
        finally:
            await nc.close()

    return asyncio.run(go())
