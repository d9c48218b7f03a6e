"""`--cluster` through the real CLI, against a real nats-server: one cluster daemon (owning every
partition) correlates like one plain `--workers 0` daemon; a source event is acked only once its hits
are stored; a source event redelivered, or a hit message stored twice, counts once."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

import nats

from rsigma.cluster.hits import decode_hit_message, hits_subject
from tests.support import DaemonProcess, Daemons, NatsServer, wait_until
from tests.support.cluster import CONSUMER, RULES, event, stored_data
from tests.support.nats_client import ack_floor, consumer_pending, publish, stored

CHAIN = """
title: Repeated brute force
id: 77777777-7777-4777-8777-777777777777
level: critical
correlation:
    type: event_count
    rules: [33333333-3333-4333-8333-333333333333]
    group-by: [User]
    timespan: 1h
    condition: {gte: 2}
"""


def failed(user: str, minute: float, command: str = "notepad") -> bytes:
    return event(4625, user, minute, command)


def cluster_daemon(daemons: Daemons, server: NatsServer, *args: Any) -> DaemonProcess:
    return daemons.start("--input", f"{server.url}/events", "--cluster", "c1", *args)


def results(d: DaemonProcess) -> Counter[str]:
    return Counter(json.dumps(r, sort_keys=True) for r in d.results())


def correlations(d: DaemonProcess) -> list[dict[str, Any]]:
    return [r for r in d.results() if "correlation_type" in r]


def set_stream(url: str, stream: str, **changes: Any) -> None:
    """Change a stream's configuration in place (e.g. make it refuse new messages)."""

    async def go() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            config = (await js.stream_info(stream)).config
            for name, value in changes.items():
                setattr(config, name, value)
            await js.update_stream(config)
        finally:
            await nc.close()

    asyncio.run(go())


def refuse_new_messages(url: str, stream: str, subject: str) -> None:
    """A stream full for good: as many messages as it holds at most (one at least), new ones refused."""
    held = len(stored(url, stream))
    if not held:
        publish(url, subject, [b"{}"])
    set_stream(url, stream, max_msgs=max(held, 1), discard="new")


def test_one_cluster_daemon_correlates_like_one_plain_daemon(daemons, server):
    rng = random.Random(16)
    users = ["alice", "bob", "carol", "dave"]
    stream = []
    for i in range(300):
        kind = rng.choice([4625, 4625, 4624, 0])
        command = "whoami" if rng.random() < 0.2 else "notepad"
        stream.append(event(kind, rng.choice(users), i * rng.choice([0.1, 0.5, 1.0]), command))
    plain = daemons.start("--input", f"{server.url}/events", "--consumer-group", "plain")
    cluster = cluster_daemon(daemons, server)
    publish(server.url, "events", stream)
    for d in (plain, cluster):
        wait_until(
            lambda d=d: ack_floor(server.url, "rsigma-events", "plain" if d is plain else CONSUMER) == 300,
            "acked",
        )
    expected = results(plain)
    assert sum(n for line, n in expected.items() if "correlation_type" in line) > 10  # both types fire
    assert {r["correlation_type"] for r in correlations(plain)} == {"event_count", "temporal"}
    wait_until(lambda: results(cluster) == expected, "the cluster daemon's results equal the plain daemon's")
    # Hits that fire nothing may still wait for the next apply round once the last result is out.
    wait_until(lambda: cluster.status()["cluster"]["hits_waiting"] == 0, "every hit applied")
    status = cluster.status()["cluster"]
    assert status["owned_partitions"] == list(range(64))
    assert status["members"][0]["id"] == status["member"] and status["partitions_replaying"] == []
    assert cluster.metric("rsigma_cluster_hits_published_total") == len(stored(server.url, "rsigma-hits-c1"))
    # every event is below the floor: nothing lags, and each partition with hits applied up to it
    assert status["watermark_lag"] == 0 and cluster.metric("rsigma_cluster_watermark_lag") == 0
    applied = status["partition_applied"]
    assert len(applied) == 64 and max(applied.values()) == 300
    assert set(status["partition_waiting"].values()) == {0}


def test_a_source_event_is_acked_only_once_its_hits_are_stored_and_is_redelivered_otherwise(daemons, server):
    first = cluster_daemon(daemons, server, "--nats-ack-wait", "2")
    publish(server.url, "events", [failed("alice", m) for m in range(3)])
    wait_until(lambda: [c["group_key"] for c in correlations(first)] == [[["User", "alice"]]], "alice fired")
    refuse_new_messages(server.url, "rsigma-hits-c1", "rsigma.hits.c1.0")
    publish(server.url, "events", [failed("bob", m) for m in range(3)])
    wait_until(lambda: first.metric("rsigma_cluster_hits_publish_failures_total", 0) >= 2, "the hits refused")
    assert ack_floor(server.url, "rsigma-events", CONSUMER) == 3
    assert consumer_pending(server.url, "rsigma-events", CONSUMER) == (0, 3)  # delivered, not acked
    first.kill()
    set_stream(server.url, "rsigma-hits-c1", max_msgs=-1, discard="old")
    second = cluster_daemon(daemons, server, "--nats-ack-wait", "2")
    wait_until(
        lambda: ack_floor(server.url, "rsigma-events", CONSUMER) == 6, "bob's events acked", timeout=30
    )
    wait_until(lambda: len(correlations(second)) == 1, "bob fired")
    # Alice's window was rebuilt from the hits stream (the second daemon gained every partition, some
    # once the killed one's key expired), silently: the first daemon had delivered her result and
    # recorded it in her partition's delivered floor. Bob's is new.
    wait_until(
        lambda: second.status()["cluster"]["results_already_delivered"] == 1, "alice rebuilt", timeout=30
    )
    assert [(c["group_key"], c["aggregated_value"]) for c in correlations(second)] == [([["User", "bob"]], 3)]
    assert second.metric("rsigma_nats_redelivered_messages_total") == 3


def test_a_source_event_redelivered_after_its_hits_were_stored_counts_once(daemons, server, tmp_path):
    """The events' detections cannot be delivered (the output stream refuses them), so they are not
    acked, but their hits are stored; killed, the daemon's successor gets them again."""
    output = f"{server.url}/results"
    first = cluster_daemon(daemons, server, "--output", output, "--nats-ack-wait", "2")
    refuse_new_messages(server.url, "rsigma-results", "results")
    publish(server.url, "events", [failed("alice", m, "whoami") for m in range(3)])
    hits = wait_until(lambda: hits_of_three_events(server.url), "the hits stored")
    assert ack_floor(server.url, "rsigma-events", CONSUMER) == 0
    first.kill()
    set_stream(server.url, "rsigma-results", max_msgs=-1, discard="old")
    cluster_daemon(daemons, server, "--output", output, "--nats-ack-wait", "2")
    wait_until(lambda: ack_floor(server.url, "rsigma-events", CONSUMER) == 3, "acked", timeout=30)
    assert stored(server.url, "rsigma-hits-c1") == hits  # the copies were duplicates (Nats-Msg-Id)
    fired = wait_until(
        lambda: [json.loads(d) for d in stored_data(server.url, "rsigma-results") if b"Brute force" in d],
        "brute force fired",
    )
    assert [(f["group_key"], f["aggregated_value"]) for f in fired] == [([["User", "alice"]], 3)]


def hits_of_three_events(url: str) -> list[tuple[bytes, dict[str, str]]]:
    """The hit messages, once the hits stream holds those of source sequences 1 to 3."""
    hits = stored(url, "rsigma-hits-c1")
    return hits if {h["Nats-Msg-Id"].split(":")[1] for _, h in hits} == {"1", "2", "3"} else []


def test_results_of_events_acked_before_a_shutdown_are_applied_and_sent_before_it_ends(daemons, server):
    d = cluster_daemon(daemons, server, "--cluster-apply-interval", "600")  # no round before the stop
    publish(server.url, "events", [failed("alice", m) for m in range(3)])
    wait_until(lambda: ack_floor(server.url, "rsigma-events", CONSUMER) == 3, "acked")
    assert correlations(d) == []
    assert d.terminate() == 0
    assert [(c["group_key"], c["aggregated_value"]) for c in correlations(d)] == [([["User", "alice"]], 3)]


def test_a_reload_bringing_a_chained_correlation_is_refused(daemons, server, tmp_path):
    d = cluster_daemon(daemons, server)
    (tmp_path / "rules.yml").write_text(RULES + "---" + CHAIN)
    assert d.post("/api/v1/reload").status == 500
    failure = d.find_log("reload failed; keeping the loaded rules")
    assert failure is not None and "'Repeated brute force'" in failure["error"]
    publish(server.url, "events", [failed("alice", m) for m in range(3)])
    wait_until(
        lambda: [c["rule_title"] for c in correlations(d)] == ["Brute force"], "the old rules correlate"
    )


def all_applied(d: DaemonProcess, url: str, events: int) -> bool:
    hits = len(stored(url, "rsigma-hits-c1"))
    return (
        ack_floor(url, "rsigma-events", CONSUMER) == events
        and d.metric("rsigma_cluster_hits_applied_total", 0) == hits
    )


def test_a_hit_message_stored_twice_is_applied_once(daemons, server):
    """Past the duplicate window a redelivered event's hits are stored again: the owner drops the copy."""
    d = cluster_daemon(daemons, server)
    publish(server.url, "events", [failed("alice", 0), failed("alice", 1)])
    wait_until(lambda: all_applied(d, server.url, 2), "both events applied")
    brute_force = [
        data
        for data, headers in stored(server.url, "rsigma-hits-c1")
        if headers["Nats-Msg-Id"].startswith("rsigma-events:2:")
        and decode_hit_message(data).hits[0].correlation == "33333333-3333-4333-8333-333333333333"
    ]
    copy = brute_force[0]
    publish(server.url, hits_subject("c1", decode_hit_message(copy).partition), [copy])  # no Nats-Msg-Id
    wait_until(lambda: d.metric("rsigma_cluster_hits_duplicates_total", 0) == 1, "the copy dropped")
    publish(server.url, "events", [failed("alice", 2, "whoami")])  # a third failure: now it fires
    wait_until(lambda: correlations(d), "brute force fired")
    assert [
        (c["group_key"], c["aggregated_value"]) for c in correlations(d) if c["rule_title"] == "Brute force"
    ] == [([["User", "alice"]], 3)]


def delete_consumers(url: str, stream: str) -> int:
    async def go() -> int:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            names = [info.name for info in await js.consumers_info(stream)]
            for name in names:
                await js.delete_consumer(stream, name)
            return len(names)
        finally:
            await nc.close()

    return asyncio.run(go())


def test_a_live_hits_consumer_that_stops_delivering_is_made_again(daemons, server):
    d = cluster_daemon(daemons, server)
    publish(server.url, "events", [failed("alice", m) for m in range(2)])
    wait_until(lambda: d.status()["cluster"]["hits_applied"] >= 2, "the first hits applied")
    assert delete_consumers(server.url, "rsigma-hits-c1") == 1  # as if it stalled for good
    publish(server.url, "events", [failed("alice", 2 + m) for m in range(2)])
    wait_until(lambda: ack_floor(server.url, "rsigma-events", CONSUMER) == 4, "acked")
    wait_until(lambda: len(correlations(d)) == 2, "brute force fired at the 3rd and 4th failure", timeout=60)
    assert [c["aggregated_value"] for c in correlations(d)] == [3, 4]
    assert d.status()["cluster"]["hits_consumer_stalls"] >= 1  # a round saw it behind, and remade it
