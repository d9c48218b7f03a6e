"""`--cluster` with the matcher pool (`serve --workers N`): the matchers detect and extract hits,
the supervisor publishes them and applies its partitions' hits (workers/cluster_pool.py). Results at
a deduplicating output equal one plain `--workers 0` daemon's: alone, beside an in-process member,
and with a matcher SIGKILLed mid-stream. Real nats-server, real CLI."""

from __future__ import annotations

import os
import signal
import time

from tests.support import wait_until
from tests.support.cluster import (
    all_acked,
    correlation_kinds,
    member,
    one_daemon_results,
    random_stream,
    split,
    wait_output,
)
from tests.support.nats_client import publish


def expect_like_one_daemon(daemons, server, events: int, started: float) -> None:
    expected = one_daemon_results(daemons, server, events)
    kinds = correlation_kinds(expected)
    assert kinds["event_count"] > 5 and kinds["temporal"] > 5, kinds
    wait_output(server.url, expected, started)


def test_serve_with_a_pool_correlates_like_one_plain_daemon(daemons, server):
    started = time.monotonic()
    pool = member(daemons, server, command="serve", workers=2)
    wait_until(lambda: split([pool]), "the member owns every partition")
    publish(server.url, "events", random_stream(31, 300))
    all_acked(server.url, 300)
    assert len(pool.matcher_pids()) == 2
    expect_like_one_daemon(daemons, server, 300, started)
    assert pool.status()["cluster"]["hits_applied"] > 0  # applied in the supervisor


def test_a_pool_member_and_an_in_process_member_correlate_like_one_daemon(daemons, server):
    started = time.monotonic()
    members = [member(daemons, server, command="serve", workers=2), member(daemons, server)]
    wait_until(lambda: split(members), "the two members split the partitions")
    publish(server.url, "events", random_stream(37, 400))
    all_acked(server.url, 400)
    assert min(m.metric("rsigma_events_processed_total") for m in members) > 0
    expect_like_one_daemon(daemons, server, 400, started)


def test_a_matcher_killed_mid_stream_in_a_cluster_loses_and_doubles_nothing(daemons, server):
    started = time.monotonic()
    pool = member(daemons, server, command="serve", workers=2)
    wait_until(lambda: split([pool]), "the member owns every partition")
    stream = random_stream(41, 400)
    publish(server.url, "events", stream[:200])
    wait_until(lambda: pool.metric("rsigma_events_processed_total", 0) > 20, "some events evaluated")
    os.kill(pool.matcher_pids()[0], signal.SIGKILL)
    publish(server.url, "events", stream[200:])
    all_acked(server.url, 400)
    assert pool.alive()
    expect_like_one_daemon(daemons, server, 400, started)
