"""Members of one cluster with real membership (KV heartbeats, rendezvous owners), through the real
CLI against a real nats-server: they split the partitions, and whether a member is killed and comes
back, or a new one joins mid-stream, the results at a deduplicating NATS output equal those of one
plain `--workers 0` daemon on the same stream: none lost, none twice."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from typing import Any

import nats

from tests.support import DaemonProcess, Daemons, NatsServer, wait_until
from tests.support.cluster import CONSUMER, event, stored_data
from tests.support.nats_client import ack_floor, publish, stored

PARTITIONS = 64
HEARTBEAT = "0.5"  # a member key lives ceil(3 x 0.5) = 2 s
TTL_S = 2.0
OUTPUT = "results"


def random_stream(seed: int, count: int, start_minute: float = 0.0) -> list[bytes]:
    """Failed logons, logons and others of several users: brute-force counts and temporal pairs."""
    rng = random.Random(seed)
    users = [f"user{i}" for i in range(10)]
    return [
        event(rng.choice([4625, 4625, 4624, 0]), rng.choice(users), start_minute + i * 0.2, "whoami")
        for i in range(count)
    ]


def member(daemons: Daemons, server: NatsServer, *args: Any, wait: bool = True) -> DaemonProcess:
    return daemons.start(
        *("--input", f"{server.url}/events", "--cluster", "c1", "--output", f"{server.url}/{OUTPUT}"),
        *("--cluster-heartbeat", HEARTBEAT, "--nats-ack-wait", "2"),
        *args,
        wait=wait,
    )


def lines(d: DaemonProcess) -> Counter[str]:
    return Counter(json.dumps(r, sort_keys=True) for r in d.results())


def output_stream(url: str) -> Counter[str]:
    messages = stored_data(url, f"rsigma-{OUTPUT}")
    return Counter(json.dumps(json.loads(data), sort_keys=True) for data in messages)


def duplicate_window_s(url: str, stream: str) -> float:
    async def go() -> float:
        nc = await nats.connect(url)
        try:
            return float((await nc.jetstream().stream_info(stream)).config.duplicate_window)
        finally:
            await nc.close()

    return asyncio.run(go())


def wait_output(url: str, expected: Counter[str], started: float) -> None:
    """The output stream ends up with each result once; its duplicate window covers the whole test,
    so a result sent again (a replay, a redelivered event) is kept once."""
    wait_until(lambda: output_stream(url) == expected, "the output stream holds the one-daemon results")
    assert duplicate_window_s(url, f"rsigma-{OUTPUT}") > time.monotonic() - started


def owned(members: list[DaemonProcess]) -> list[set[int]]:
    return [set(m.status()["cluster"]["owned_partitions"]) for m in members]


def split(members: list[DaemonProcess]) -> bool:
    """Every member sees them all, and their owned sets are disjoint and cover every partition."""
    statuses = [m.status()["cluster"] for m in members]
    if any(len(s["members"]) != len(members) or s["partitions_replaying"] for s in statuses):
        return False
    sets = [set(s["owned_partitions"]) for s in statuses]
    return all(sets) and sum(map(len, sets)) == PARTITIONS and set().union(*sets) == set(range(PARTITIONS))


def plain_results(daemons: Daemons, server: NatsServer, events: int) -> Counter[str]:
    plain = daemons.start("--input", f"{server.url}/events", "--consumer-group", "plain")
    wait_until(lambda: ack_floor(server.url, "rsigma-events", "plain") == events, "acked by the plain daemon")
    expected = lines(plain)
    kinds = Counter(json.loads(line).get("correlation_type") for line in expected.elements())
    assert kinds["event_count"] > 5 and kinds["temporal"] > 5, kinds
    return expected


def all_acked(url: str, events: int) -> None:
    wait_until(lambda: ack_floor(url, "rsigma-events", CONSUMER) == events, "acked by members", timeout=60)


def test_two_members_split_the_partitions_and_correlate_like_one_daemon(daemons, server):
    started = time.monotonic()
    members = [member(daemons, server) for _ in range(2)]
    wait_until(lambda: split(members), "the two members split the partitions")
    stream = random_stream(7, 300)
    publish(server.url, "events", stream)
    all_acked(server.url, 300)
    expected = plain_results(daemons, server, 300)
    assert min(m.metric("rsigma_events_processed_total") for m in members) > 0  # both took a share
    wait_output(server.url, expected, started)
    applied = [m.metric("rsigma_cluster_hits_applied_total") for m in members]
    assert min(applied) > 0 and sum(applied) == len(stored(server.url, "rsigma-hits-c1"))
    assert [m.metric("rsigma_cluster_members") for m in members] == [2, 2]


def test_a_member_killed_mid_stream_and_restarted_loses_nothing_and_doubles_nothing(daemons, server):
    started = time.monotonic()
    a, b = (member(daemons, server, "--cluster-member-id", name) for name in "ab")
    wait_until(lambda: split([a, b]), "the two members split the partitions")
    a_owned = owned([a])[0]
    stream = random_stream(11, 450)
    publish(server.url, "events", stream[:150])
    wait_until(lambda: a.metric("rsigma_events_processed_total", 0) > 20, "a evaluated some events")
    a.kill()  # mid-stream: its unacked events go to b after --nats-ack-wait
    killed = time.monotonic()
    publish(server.url, "events", stream[150:300])
    wait_until(lambda: owned([b])[0] == set(range(PARTITIONS)), "b took a's partitions", timeout=30)
    assert time.monotonic() - killed <= 2 * TTL_S + 3.0  # the documented bound: 2 TTLs (+ polling, load)
    wait_until(lambda: not b.status()["cluster"]["partitions_replaying"], "b rebuilt a's partitions")
    a.start()  # the same member id: it takes its partitions back and rebuilds them in turn
    wait_until(lambda: split([a, b]), "a took its partitions back")
    assert owned([a])[0] == a_owned
    publish(server.url, "events", stream[300:])
    all_acked(server.url, 450)
    expected = plain_results(daemons, server, 450)
    wait_output(server.url, expected, started)
    assert b.metric("rsigma_cluster_rebalances_total") >= 2
    assert b.status()["cluster"]["windows_handed_over"] > 0  # a's windows, dropped when a came back


def test_a_member_joining_mid_stream_takes_its_partitions_with_their_windows(daemons, server):
    started = time.monotonic()
    first = [member(daemons, server) for _ in range(2)]
    wait_until(lambda: split(first), "the two members split the partitions")
    stream = random_stream(13, 400)
    publish(server.url, "events", stream[:200])
    wait_until(lambda: ack_floor(server.url, "rsigma-events", CONSUMER) >= 100, "half acked")
    third = member(daemons, server)  # joins while the first half is still being evaluated
    publish(server.url, "events", stream[200:])
    wait_until(lambda: split([*first, third]), "three members split the partitions")
    all_acked(server.url, 400)
    expected = plain_results(daemons, server, 400)
    wait_output(server.url, expected, started)
    assert third.status()["cluster"]["hits_replayed"] > 0  # its windows came from the hits stream
    assert third.metric("rsigma_cluster_hits_replayed_total") == third.status()["cluster"]["hits_replayed"]
    assert third.metric("rsigma_cluster_partitions_replaying") == 0


def test_a_second_daemon_with_a_live_member_id_exits_3(daemons, server):
    first = member(daemons, server, "--cluster-member-id", "web-1")
    second = member(daemons, server, "--cluster-member-id", "web-1", "--log-format", "text", wait=False)
    assert second.wait_exit(30) == 3
    assert "--cluster-member-id web-1: another live daemon uses this id in cluster 'c1'" in second.stderr()
    assert first.alive() and first.status()["cluster"]["owned_partitions"] == list(range(PARTITIONS))


def test_a_member_whose_id_another_daemon_takes_stops_with_exit_3(daemons, server):
    d = member(daemons, server, "--cluster-member-id", "web-1")
    record = {"member": "web-1", "host": "elsewhere", "pid": 1, "started": 1.0, "heartbeat_s": 0.5}
    publish(server.url, "$KV.rsigma-cluster-c1.members.web-1", [json.dumps(record).encode()])
    assert d.wait_exit(30) == 3
    lost = d.find_log("cluster membership lost")
    assert lost is not None and "another live daemon uses this id" in lost["error"]
    assert "pid 1 on elsewhere" in lost["error"]


def test_a_correlation_longer_than_the_hits_stream_keeps_hits_is_refused(daemons, server, tmp_path):
    rules = tmp_path / "rules.yml"  # the one the daemons read
    rules.write_text(rules.read_text().replace("timespan: 10m", "timespan: 2d"))
    done = daemons.run("--input", f"{server.url}/events", "--cluster", "c1", "--log-format", "text")
    assert done.returncode == 3, done.stderr
    assert "correlation 'Brute force' (33333333-3333-4333-8333-333333333333) spans 172800 s" in done.stderr
    assert "the hits stream 'rsigma-hits-c1' keeps hits 86400 s" in done.stderr


def test_a_reload_bringing_a_correlation_longer_than_the_hits_stream_fails(daemons, server, tmp_path):
    d = member(daemons, server)
    rules = tmp_path / "rules.yml"
    rules.write_text(rules.read_text().replace("timespan: 10m", "timespan: 2d"))
    assert d.post("/api/v1/reload").status == 500
    failure = d.find_log("reload failed; keeping the loaded rules")
    assert failure is not None and "spans 172800 s" in failure["error"]
