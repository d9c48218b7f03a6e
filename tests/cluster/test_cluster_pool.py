"""`--cluster` with the matcher pool (`--workers N`, N > 0), through the real CLI against a real
nats-server: matchers detect and return the hits, the supervisor stores them and applies its
partitions' hits, so a pool member, alone or beside a `--workers 0` member, correlates like one plain
`--workers 0` daemon; a matcher killed mid-stream loses and doubles nothing."""

from __future__ import annotations

import os
import random
import signal
import time

from tests.support import wait_until
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
