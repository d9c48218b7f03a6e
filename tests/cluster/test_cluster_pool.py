"""`--cluster` with the matcher pool (`serve --workers N`): the matchers detect and extract hits,
the supervisor publishes them and applies its partitions' hits (workers/cluster_pool.py). Results at
a deduplicating output equal one plain `--workers 0` daemon's: alone, beside an in-process member,
and with a matcher SIGKILLed mid-stream; also with --jq (several events per payload). A reload runs
the same rules in the matchers and in the supervisor. Real nats-server, real CLI."""

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
    random_stream,
    split,
    wait_output,
)
from tests.support.nats_client import publish


def expect_like_one_daemon(daemons, server, events: int, started: float, *args: str) -> None:
    expected = one_daemon_results(daemons, server, events, *args)
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
    # the log says what the restart cost: nothing, since no matcher holds windows in a cluster
    restarted = [r["message"] for r in pool.find_logs("matcher restarted; ")]
    assert restarted == [
        "matcher restarted; with --cluster no matcher holds correlation windows, so it lost nothing"
    ]


def test_a_pool_member_correlates_extracted_events_like_one_plain_daemon(daemons, server):
    """With --jq a payload holds several events: each keeps its place among its payload's hits."""
    started = time.monotonic()
    jq = ("--jq", ".records[]")
    member(daemons, server, "--workers", "2", *jq)
    events = [json.loads(e) for e in random_stream(9, 600)]
    rng = random.Random(9)
    documents, i = [], 0
    while i < len(events):
        n = rng.randint(1, 4)
        documents.append(json.dumps({"records": events[i : i + n]}).encode())
        i += n
    publish(server.url, "events", documents)
    all_acked(server.url, len(documents))
    expect_like_one_daemon(daemons, server, len(documents), started, *jq)


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
