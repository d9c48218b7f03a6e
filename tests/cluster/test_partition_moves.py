"""Members of one cluster with real membership (KV heartbeats, rendezvous owners), through the real
CLI against a real nats-server: they split the partitions, and whether a member is killed and comes
back, or a new one joins mid-stream, the results at a deduplicating NATS output equal those of one
plain `--workers 0` daemon on the same stream: none lost, none twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import nats
from nats.js.errors import KeyNotFoundError

from rsigma.cluster.hits import decode_hit_message
from rsigma.correlation.sharding import shard_of
from tests.support import DaemonProcess, Daemons, NatsServer, wait_until
from tests.support.cluster import (
    CONSUMER,
    HEARTBEAT,
    PARTITIONS,
    TTL_S,
    all_acked,
    correlation_kinds,
    event,
    lines,
    member,
    one_daemon_results,
    owned,
    random_stream,
    split,
    wait_output,
)
from tests.support.daemon import read_json_lines
from tests.support.nats_client import ack_floor, publish, stored


def plain_results(daemons: Daemons, server: NatsServer, events: int) -> Counter[str]:
    expected = one_daemon_results(daemons, server, events)
    kinds = correlation_kinds(expected)
    assert kinds["event_count"] > 5 and kinds["temporal"] > 5, kinds
    return expected


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
    # each reads only its own partitions' subjects: nothing of the other's reaches it
    assert [m.status()["cluster"]["hits_of_other_partitions"] for m in members] == [0, 0]


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


# ---- the delivered floor: a restart or a move sends no old result again (file outputs show it) ----

EPOCH = 1704067200  # 2024-01-01T00:00:00Z, the time of event(..., minute=0)


def file_member(daemons: Daemons, server: NatsServer, path: Path, *args: Any) -> DaemonProcess:
    return daemons.start(
        *("--input", f"{server.url}/events", "--cluster", "c1", "--output", f"file://{path}"),
        *("--cluster-heartbeat", HEARTBEAT, "--nats-ack-wait", "2"),
        *args,
    )


def file_lines(*paths: Path) -> Counter[str]:
    return Counter(json.dumps(r, sort_keys=True) for path in paths for r in read_json_lines(path))


def correlation_lines(lines: Counter[str]) -> Counter[str]:
    return Counter({line: n for line, n in lines.items() if '"correlation_type"' in line})


def delivered_floors(url: str) -> dict[int, int]:
    """The bucket's delivered floors, by partition (partitions never written are left out)."""

    async def go() -> dict[int, int]:
        nc = await nats.connect(url)
        try:
            kv = await nc.jetstream().key_value("rsigma-cluster-c1")
            floors = {}
            for p in range(PARTITIONS):
                with contextlib.suppress(KeyNotFoundError):
                    floors[p] = json.loads((await kv.get(f"delivered.{p}")).value)["source_seq"]
            return floors
        finally:
            await nc.close()

    return asyncio.run(go())


def firing(line: str) -> tuple[int, int]:
    """(partition, source sequence of the firing event) of a correlation result with `event_refs`:
    the stream is published in order, event i (sequence i + 1) at minute i x 0.2."""
    result = json.loads(line)
    key = result["rule_id"]
    group = [value for _, value in result["group_key"]]
    last = max(ref["timestamp"] for ref in result["event_refs"])
    return shard_of(key, group, PARTITIONS), round((last - EPOCH) / 12) + 1


def applied_all(d: DaemonProcess) -> bool:
    status = d.status()["cluster"]
    return not status["partitions_replaying"] and status["hits_waiting"] == 0


def test_a_member_restarted_sends_no_result_twice_and_its_windows_span_the_restart(daemons, server, tmp_path):
    out = tmp_path / "results.jsonl"
    # Without snapshots (a member stopping writes them, test_snapshots.py), the restart replays.
    d = file_member(daemons, server, out, "--cluster-member-id", "solo", "--cluster-snapshot-interval", "0")
    stream = random_stream(17, 300)
    # Two failed logons of "edge" before the restart and the third after it: the brute force needs both.
    first = [*stream[:150], event(4625, "edge", 29.5), event(4625, "edge", 29.6)]
    second = [event(4625, "edge", 29.9), *stream[150:]]
    publish(server.url, "events", first)
    all_acked(server.url, len(first))
    wait_until(lambda: d.status()["cluster"]["hits_waiting"] == 0 and out.exists(), "the first half applied")
    assert d.terminate() == 0
    d.start()
    publish(server.url, "events", second)
    total = len(first) + len(second)
    all_acked(server.url, total)
    expected = plain_results(daemons, server, total)
    wait_until(lambda: file_lines(out) == expected, "the file holds each one-daemon result once")
    edge = [line for line in expected if '"edge"' in line and "Brute force" in line]
    assert len(edge) == 1 and file_lines(out)[edge[0]] == 1
    status = d.status()["cluster"]
    assert status["results_already_delivered"] > 0  # the replay rebuilt the windows without sending
    assert d.metric("rsigma_cluster_results_already_delivered_total") == status["results_already_delivered"]


def test_the_bucket_holds_each_partitions_delivered_floor_and_the_status_shows_it(daemons, server, tmp_path):
    d = file_member(daemons, server, tmp_path / "results.jsonl")
    publish(server.url, "events", random_stream(23, 60))
    all_acked(server.url, 60)
    hits = [decode_hit_message(data) for data, _ in stored(server.url, "rsigma-hits-c1")]
    last_hit: dict[int, int] = {}
    for message in hits:
        last_hit[message.partition] = max(last_hit.get(message.partition, 0), message.sequence)

    def written() -> bool:
        floors = delivered_floors(server.url)
        return set(floors) == set(last_hit) and all(floors[p] >= s for p, s in last_hit.items())

    wait_until(written, "a floor per partition with hits, at or above its last hit")
    floors = delivered_floors(server.url)
    status = d.status()["cluster"]
    assert status["delivered_floor"] == {str(p): floors.get(p, 0) for p in range(PARTITIONS)}
    assert all(floor <= 60 for floor in floors.values())  # never above the input's ack floor
    assert status["delivered_floor_writes"] >= len(floors) and status["delivered_floor_write_failures"] == 0


def test_a_member_killed_mid_stream_resends_at_most_its_unconfirmed_results(daemons, server, tmp_path):
    outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    refs = ("--correlation-event-mode", "refs")
    a, b = (file_member(daemons, server, out, "--cluster-member-id", out.stem, *refs) for out in outs)
    wait_until(lambda: split([a, b]), "the two members split the partitions")
    a_owned = owned([a])[0]
    stream = random_stream(19, 450)
    publish(server.url, "events", stream[:300])
    wait_until(lambda: sum(a.status()["cluster"]["delivered_floor"].values()) > 0, "a delivered results")
    a.kill()
    at_kill = delivered_floors(server.url)  # b writes a's partitions only once it gained them (a TTL later)
    publish(server.url, "events", stream[300:])
    all_acked(server.url, 450)
    wait_until(lambda: owned([b])[0] == set(range(PARTITIONS)), "b took a's partitions", timeout=30)
    wait_until(lambda: applied_all(b), "b rebuilt a's partitions and applied every hit", timeout=30)
    plain = daemons.start("--input", f"{server.url}/events", "--consumer-group", "plain", *refs)
    wait_until(lambda: ack_floor(server.url, "rsigma-events", "plain") == 450, "acked by the plain daemon")
    expected = correlation_lines(lines(plain))
    wait_until(lambda: not expected - correlation_lines(file_lines(*outs)), "each result in a file")
    twice = correlation_lines(file_lines(*outs)) - expected
    # Only results of a's partitions above the floor a had written when killed can come twice.
    for line in twice:
        partition, sequence = firing(line)
        assert partition in a_owned and sequence > at_kill.get(partition, 0), (line, at_kill.get(partition))
    # And a had delivered results below its floors: those are not sent again.
    below = [line for line in expected if (f := firing(line))[0] in a_owned and f[1] <= at_kill.get(f[0], 0)]
    assert below and not set(below) & set(twice)
    assert b.status()["cluster"]["results_already_delivered"] >= len(below)
