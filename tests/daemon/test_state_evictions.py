"""--max-state-entries: windows evicted at the cap are counted and logged, never silently.

The brute-force case: an attacker's two failed logons, 1,200 other users' failed logons (a spray,
or junk usernames), then the attacker's third. With a cap below the number of groups the attacker's
window is the least recently updated one, so it is evicted and the third logon starts a new count:
the correlation does not fire. That is the policy (oldest first: a flood of new groups is not
refused, and the loss shows in rsigma_correlation_evictions_total and a warning).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

JUNK = 1_200
GROUPS = JUNK + 2  # the attacker's window twice: before its eviction, and the new one
WARNING = "correlation windows evicted at --max-state-entries: correlations may miss; raise the limit"


def spray(ev) -> list[dict]:
    junk = [ev.failed(f"junk{i:04d}", 2) for i in range(JUNK)]
    return [ev.failed("attacker", 0), ev.failed("attacker", 1), *junk, ev.failed("attacker", 3)]


def attacker_results(d) -> list[dict]:
    return [
        r
        for r in d.results()
        if r["rule_title"] == "Brute force" and r["group_key"] == [["User", "attacker"]]
    ]


def test_evictions_at_the_cap_are_counted_and_logged(daemon, rules_file, ev, daemon_workers):
    d = daemon("-r", rules_file, "--input", "http", "--max-state-entries", "100")
    events = spray(ev)
    d.post_events(*events)
    d.wait_processed(len(events))
    live = d.metric("rsigma_correlation_state_entries")
    evicted = d.metric("rsigma_correlation_evictions_total")
    # Every window created was evicted or is live; the cap holds in total, or per matcher in a pool.
    assert evicted + live == GROUPS
    assert live == 100 * (daemon_workers or 1)
    warnings = d.find_logs(WARNING)
    assert len(warnings) == 1, "one warning a minute, not one per eviction"
    first = warnings[0]
    assert first["level"] == "warning"
    assert first["max_state_entries"] == 100
    assert first["limit_applies"] == ("per matcher" if daemon_workers else "in total")
    assert 1 <= first["evicted"] <= evicted
    assert d.terminate() == 0
    assert attacker_results(d) == [], "the attacker's two earlier logons were evicted with its window"
    # At shutdown the rest is said: the warnings add up to the metric.
    assert sum(w["evicted"] for w in d.find_logs(WARNING)) == evicted


@pytest.mark.parametrize("cap", [None, "2000"], ids=["default-cap", "cap-above-the-groups"])
def test_below_the_cap_the_attacker_is_caught_without_evictions(daemon, rules_file, ev, cap):
    """The control: the same events fire when the windows fit, and nothing is counted or logged."""
    d = daemon("-r", rules_file, "--input", "http", *(["--max-state-entries", cap] if cap else []))
    events = spray(ev)
    d.post_events(*events)
    d.wait_processed(len(events))
    assert d.metric("rsigma_correlation_evictions_total") == 0
    assert d.metric("rsigma_correlation_state_entries") == JUNK + 1
    assert d.terminate() == 0
    assert [r["aggregated_value"] for r in attacker_results(d)] == [3]
    assert d.find_logs(WARNING) == []


@pytest.mark.single_backend
def test_pool_evictions_survive_a_matcher_restart_and_a_reload(daemon, rules_file, ev, wait_until):
    """Each matcher counts its own evictions; the supervisor keeps a dead one's count and a reload
    carries them over, so the metric keeps counting every eviction after either."""
    d = daemon(
        "-r", rules_file, "--input", "http", "--workers", "2", "--max-state-entries", "100",
        "--state-save-interval", "0.2",
    )  # fmt: skip
    d.post_events(*[ev.failed(f"junk{i:04d}", 2) for i in range(JUNK)])
    d.wait_processed(JUNK)
    assert d.metric("rsigma_correlation_evictions_total") == JUNK - 200
    time.sleep(1)  # a few snapshot intervals: a restarted matcher gets its full shard back
    os.kill(d.matcher_pids()[0], signal.SIGKILL)
    wait_until(
        lambda: sum(d.metric("rsigma_worker_restarts_total", 0, worker=w) for w in "01") == 1, "a restart"
    )
    # Both shards are full: every new group evicts exactly one window.
    d.post_events(*[ev.failed(f"after-restart{i}", 3) for i in range(50)])
    d.wait_processed(JUNK + 50)
    assert d.metric("rsigma_correlation_evictions_total") == JUNK - 200 + 50
    assert d.post("/api/v1/reload").status == 200
    d.post_events(*[ev.failed(f"after-reload{i}", 4) for i in range(50)])
    d.wait_processed(JUNK + 100)
    assert d.metric("rsigma_correlation_evictions_total") == JUNK - 200 + 100
    assert d.metric("rsigma_correlation_state_entries") == 200
