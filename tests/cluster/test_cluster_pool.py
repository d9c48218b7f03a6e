"""`--cluster` with the matcher pool (`--workers N`, N > 0), through the real CLI against a real
nats-server: matchers detect and return the hits, the supervisor stores them and applies its
partitions' hits, so a pool member, alone or beside a `--workers 0` member, correlates like one plain
`--workers 0` daemon; a matcher killed mid-stream loses and doubles nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import time

from tests.support import DaemonProcess, wait_until
from tests.support.cluster import (
    all_acked,
    correlation_kinds,
    event,
    member,
    one_daemon_results,
    split,
    wait_output,
)
from tests.support.nats_client import publish, stored


def random_stream(seed: int, count: int) -> list[bytes]:
    """Failed logons, logons and others of several users: brute-force counts and temporal pairs."""
    rng = random.Random(seed)
    users = [f"user{i}" for i in range(10)]
    return [
        event(rng.choice([4625, 4625, 4624, 0]), rng.choice(users), i * 0.2, "whoami") for i in range(count)
    ]


def test_a_pool_member_correlates_like_one_plain_daemon(daemons, server):
    started = time.monotonic()
    pool = member(daemons, server, "--workers", "2")
    publish(server.url, "events", random_stream(3, 400))
    all_acked(server.url, 400)
    expected = one_daemon_results(daemons, server, 400)
    kinds = correlation_kinds(expected)
    assert kinds["event_count"] > 5 and kinds["temporal"] > 5, kinds
    wait_output(server.url, expected, started)
    status = pool.status()
    assert len(status["workers"]) == 2 and sum(w["events"] for w in status["workers"]) == 400
    assert status["cluster"]["owned_partitions"] == list(range(64))
    assert pool.metric("rsigma_cluster_hits_published_total") == len(stored(server.url, "rsigma-hits-c1"))


def test_a_pool_member_correlates_extracted_events_like_one_plain_daemon(daemons, server):
    """With --jq a payload holds several events: each keeps its place among its payload's hits."""
    started = time.monotonic()
    jq = ("--jq", ".records[]")
    member(daemons, server, "--workers", "2", *jq)
    evs = [json.loads(e) for e in random_stream(9, 600)]
    rng = random.Random(9)
    documents, i = [], 0
    while i < len(evs):
        n = rng.randint(1, 4)
        documents.append(json.dumps({"records": evs[i : i + n]}).encode())
        i += n
    publish(server.url, "events", documents)
    all_acked(server.url, len(documents))
    expected = one_daemon_results(daemons, server, len(documents), *jq)
    kinds = correlation_kinds(expected)
    assert kinds["event_count"] > 5 and kinds["temporal"] > 5, kinds
    wait_output(server.url, expected, started)


def test_a_pool_member_and_an_inline_member_correlate_like_one_daemon(daemons, server):
    started = time.monotonic()
    members = [member(daemons, server, "--workers", "2"), member(daemons, server, "--workers", "0")]
    wait_until(lambda: split(members), "the two members split the partitions")
    publish(server.url, "events", random_stream(5, 400))
    all_acked(server.url, 400)
    expected = one_daemon_results(daemons, server, 400)
    assert min(m.metric("rsigma_events_processed_total") for m in members) > 0  # both took a share
    wait_output(server.url, expected, started)
    applied = [m.metric("rsigma_cluster_hits_applied_total") for m in members]
    assert min(applied) > 0 and sum(applied) == len(stored(server.url, "rsigma-hits-c1"))


def test_a_matcher_killed_mid_stream_loses_and_doubles_nothing(daemons, server):
    started = time.monotonic()
    pool = member(daemons, server, "--workers", "2", "--batch-size", "50")
    stream = random_stream(11, 3000)
    publish(server.url, "events", stream[:1500])
    wait_until(lambda: pool.metric("rsigma_events_processed_total", 0) > 0, "the pool at work")
    os.kill(pool.matcher_pids()[0], signal.SIGKILL)
    publish(server.url, "events", stream[1500:])
    all_acked(server.url, 3000)
    assert sum(w["restarts"] for w in pool.status()["workers"]) == 1
    expected = one_daemon_results(daemons, server, 3000)
    wait_output(server.url, expected, started)
    # the batches the matcher held were evaluated again, and their hits published once
    if pool.metric("rsigma_nats_redelivered_messages_total", 0) == 0:
        assert pool.metric("rsigma_cluster_hits_published_total") == len(stored(server.url, "rsigma-hits-c1"))


MANY_LOGONS = """
title: Many logons
id: 88888888-8888-4888-8888-888888888888
level: medium
correlation:
    type: event_count
    rules: [logon]
    group-by: [User]
    timespan: 10m
    condition: {gte: 2}
---
"""


def fired(d: DaemonProcess) -> list[tuple[str, str, int]]:
    return sorted(
        (r["rule_title"], r["group_key"][0][1], r["aggregated_value"])
        for r in d.results()
        if r.get("correlation_type") == "event_count"
    )


def test_a_reload_runs_the_new_rules_in_the_matchers_and_the_supervisor_alike(daemons, server, tmp_path):
    """A refused reload (a window longer than the hits stream keeps) leaves the old rules everywhere;
    one that puts a correlation before the others (every index moves) runs in the matchers and in the
    supervisor's correlation engine at once."""
    d = daemons.start("--input", f"{server.url}/events", "--cluster", "c1", "--workers", "2")
    rules = tmp_path / "rules.yml"
    original = rules.read_text()
    rules.write_text(original.replace("timespan: 10m", "timespan: 2d"))
    assert d.post("/api/v1/reload").status == 500
    failure = d.find_log("reload failed; keeping the loaded rules")
    assert failure is not None and "spans 172800 s" in failure["error"]
    publish(server.url, "events", [event(4625, "alice", m) for m in range(3)])
    wait_until(lambda: fired(d) == [("Brute force", "alice", 3)], "the old rules correlate")
    brute_force = original.index("title: Brute force")
    changed = original[:brute_force] + MANY_LOGONS + original[brute_force:].replace("{gte: 3}", "{gte: 2}")
    rules.write_text(changed)
    assert d.post("/api/v1/reload").status == 200
    publish(server.url, "events", [event(4625, "bob", 20), event(4625, "bob", 21)])
    publish(server.url, "events", [event(4624, "carol", 20), event(4624, "carol", 21)])
    expected = [("Brute force", "alice", 3), ("Brute force", "bob", 2), ("Many logons", "carol", 2)]
    wait_until(lambda: fired(d) == expected, "the new rules correlate")
