"""--correlation-event-mode and --max-group-entries in the daemon: events in correlation results, with a
matcher pool too (events travel from the matcher that evaluated them to the one owning the group),
across a restart with --state-db, and the group-entry cap's metric."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.state_db import brute_force


def failed(user: str, second: int, record: int) -> dict[str, Any]:
    """A failed logon at 00:00:00 + `second` (all within the correlation's hour), numbered `record`."""
    minute, sec = divmod(second, 60)
    return {
        "EventID": 4625,
        "User": user,
        "@timestamp": f"2024-01-01T00:{minute:02d}:{sec:02d}Z",
        "EventRecordID": record,
    }


def test_full_mode_results_carry_the_group_events_from_every_matcher(daemon, daemon_workers, ev, rules_file):
    """3000 events, every 15th a failed logon of one of two users: with a pool both matchers evaluate
    some, and the result of each group carries the bodies of its latest four, wherever they were
    evaluated, exactly as one process gives them."""
    d = daemon("-r", rules_file, "--correlation-event-mode", "full", "--max-correlation-events", "4")
    events: list[dict[str, Any]] = []
    failures: dict[str, list[dict[str, Any]]] = {"ann": [], "bob": []}
    for i in range(3000):
        if i % 15 == 0:
            user = "ann" if i % 30 == 0 else "bob"
            event = failed(user, i, i)
            failures[user].append(event)
        else:
            event = ev.quiet(i)
        events.append(event)
    d.send(ev.ndjson(*events))
    d.wait_processed(len(events), timeout=30)
    if daemon_workers:
        assert all(d.metric("rsigma_worker_events_total", worker=str(w)) > 0 for w in range(daemon_workers))
    results = brute_force(d.results())
    for user, mine in failures.items():
        got = [r for r in results if r["group_key"] == [["User", user]]]
        assert [r["aggregated_value"] for r in got] == [float(k) for k in range(3, len(mine) + 1)]
        assert [r["events"] for r in got] == [mine[max(0, k - 4) : k] for k in range(3, len(mine) + 1)]
        assert all("event_refs" not in r for r in got)


def test_event_refs_survive_a_restart_with_state_db(daemon, ev, rules_file, tmp_path):
    """The kept references are part of the saved state: the result after the restart lists all three."""
    db = tmp_path / "rsigma.db"
    flags = ("-r", rules_file, "--state-db", db, "--correlation-event-mode", "refs")
    first = [failed("u", 0, 101), failed("u", 60, 102)]
    d1 = daemon(*flags, stdin=ev.ndjson(*first))
    assert d1.wait_exit() == 0, d1.stderr()
    assert d1.results() == []
    d2 = daemon(*flags, stdin=ev.ndjson(failed("u", 120, 103)))
    assert d2.wait_exit() == 0, d2.stderr()
    (result,) = brute_force(d2.results())
    base = 1704067200  # 2024-01-01T00:00:00Z
    assert result["event_refs"] == [
        {"timestamp": base, "id": "101"},
        {"timestamp": base + 60, "id": "102"},
        {"timestamp": base + 120, "id": "103"},
    ]


def test_max_group_entries_caps_windows_and_counts_the_drops(daemon, ev, rules_file):
    d = daemon("-r", rules_file, "--input", "http", "--max-group-entries", "3")
    d.post_events(*[failed("u", i, i) for i in range(5)], *[failed("v", i, i) for i in range(2)])
    d.wait_metric("rsigma_correlation_group_entries_dropped_total", 2)
    d.wait_processed(7)
    assert [r["aggregated_value"] for r in brute_force(d.results())] == [3.0, 3.0, 3.0]


@pytest.mark.single_backend
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_unknown_correlation_event_mode_exits_3(run_daemon, rules_file, log_format):
    proc = run_daemon("-r", rules_file, "--correlation-event-mode", "everything", "--log-format", log_format)
    assert proc.returncode == 3
    message = "--correlation-event-mode: expected none, full or refs, got 'everything'"
    if log_format == "text":
        assert f"error: {message}" in proc.stderr
    else:
        (record,) = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
        assert record["message"] == message and record["level"] == "critical"


@pytest.mark.single_backend
def test_event_settings_from_the_config_file(daemon, ev, rules_file, tmp_path):
    """RSigma's keys daemon.correlation.event_mode, max_correlation_events and max_group_entries."""
    config = tmp_path / "rsigma.yaml"
    settings = {"event_mode": "refs", "max_correlation_events": 2, "max_group_entries": 3}
    config.write_text("daemon:\n  correlation:\n" + "".join(f"    {k}: {v}\n" for k, v in settings.items()))
    d = daemon("-r", rules_file, "--config", config, stdin=ev.ndjson(*[failed("u", i, i) for i in range(4)]))
    assert d.wait_exit() == 0, d.stderr()
    results = brute_force(d.results())
    assert [r["aggregated_value"] for r in results] == [3.0, 3.0]
    assert [[ref["id"] for ref in r["event_refs"]] for r in results] == [["1", "2"], ["2", "3"]]
