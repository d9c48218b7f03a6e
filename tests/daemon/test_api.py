"""The HTTP API: health, readiness, metrics, status, rules, reload and event ingest (--input http)."""

from __future__ import annotations

import pytest

ISSUE_METRICS = [
    "rsigma_events_processed_total",
    "rsigma_events_parse_errors_total",
    "rsigma_detection_matches_total",
    "rsigma_correlation_matches_total",
    "rsigma_detection_matches_by_rule_total",
    "rsigma_detection_rules_loaded",
    "rsigma_correlation_rules_loaded",
    "rsigma_correlation_state_entries",
    "rsigma_reloads_total",
    "rsigma_reloads_failed_total",
    "rsigma_event_processing_seconds",
    "rsigma_batch_size",
    "rsigma_input_queue_depth",
    "rsigma_back_pressure_events_total",
    "rsigma_dlq_events_total",
    "rsigma_sink_retries_total",
    "rsigma_sink_delivery_failures_total",
    "rsigma_uptime_seconds",
]


@pytest.fixture
def http_daemon(daemon, rules_dir, tmp_path):
    out, dlq = tmp_path / "out.ndjson", tmp_path / "dlq.ndjson"
    d = daemon("-r", rules_dir, "--input", "http", "--output", f"file://{out}", "--dlq", f"file://{dlq}")
    d.out, d.dlq = out, dlq
    return d


def test_healthz(http_daemon):
    r = http_daemon.get("/healthz")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": "ok"}


def test_readyz(http_daemon):
    r = http_daemon.get("/readyz")
    assert r.status == 200
    assert r.json() == {"status": "ready", "rules_loaded": True}


def test_status(http_daemon, ev):
    d = http_daemon
    body = d.get("/api/v1/status").json()
    for key in (
        "status",
        "detection_rules",
        "correlation_rules",
        "correlation_state_entries",
        "events_processed",
        "detection_matches",
        "correlation_matches",
        "uptime_seconds",
        "inputs",
    ):
        assert key in body, key
    assert body["status"] == "running"
    assert body["detection_rules"] == 2
    assert body["correlation_rules"] == 1
    assert body["events_processed"] == 0
    assert body["detection_matches"] == 0
    assert body["correlation_matches"] == 0
    assert body["correlation_state_entries"] == 0
    assert isinstance(body["uptime_seconds"], int | float) and body["uptime_seconds"] >= 0
    assert list(body["inputs"]) == ["http"]

    d.post_events(ev.whoami(1), ev.quiet(2), ev.failed("u", 0), ev.failed("u", 1), ev.failed("u", 2))
    d.wait_processed(5)
    body = d.get("/api/v1/status").json()
    assert body["events_processed"] == 5
    assert body["detection_matches"] == 1
    assert body["correlation_matches"] == 1
    assert body["correlation_state_entries"] == 1


def test_rules(http_daemon, rules_dir):
    r = http_daemon.get("/api/v1/rules")
    assert r.status == 200
    body = r.json()
    assert body["detection_rules"] == 2
    assert body["correlation_rules"] == 1
    assert str(rules_dir) in str(body["rules_path"])


def test_reload_endpoint(http_daemon):
    r = http_daemon.post("/api/v1/reload")
    assert r.status == 200
    assert r.json()["status"] == "reloaded"
    assert http_daemon.metric("rsigma_reloads_total") == 1
    assert http_daemon.metric("rsigma_reloads_failed_total") == 0


def test_unknown_path_and_wrong_method(http_daemon):
    assert http_daemon.get("/api/v1/nope").status == 404
    assert http_daemon.get("/api/v1/reload").status == 405
    assert http_daemon.get("/api/v1/events").status == 405
    assert http_daemon.post("/healthz").status == 405


def test_metrics_text_format_and_names(http_daemon):
    r = http_daemon.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.body.decode()
    for name in ISSUE_METRICS:
        assert f"# TYPE {name} " in text, name
    m = http_daemon.metrics()
    assert m[("rsigma_detection_rules_loaded", frozenset())] == 2
    assert m[("rsigma_correlation_rules_loaded", frozenset())] == 1
    assert m[("rsigma_events_processed_total", frozenset())] == 0
    assert m[("rsigma_uptime_seconds", frozenset())] > 0


def test_ingest_reaches_file_sink(http_daemon, ev, jsonl, wait_until):
    d = http_daemon
    r = d.post(
        "/api/v1/events",
        ev.ndjson(
            ev.whoami(1), ev.quiet(2), ev.whoami(3), ev.failed("u", 0), ev.failed("u", 1), ev.failed("u", 2)
        ),
    )
    assert r.status == 200
    assert r.json() == {"accepted": 6}
    results = wait_until(lambda: len(jsonl(d.out)) >= 3 and jsonl(d.out), "3 results in the file sink")
    assert [r["rule_title"] for r in results] == ["Whoami", "Whoami", "Brute force"]
    assert [r["matched_fields"][0]["value"] for r in results[:2]] == ["cmd /c whoami #1", "cmd /c whoami #3"]
    assert results[2]["group_key"] == [["User", "u"]]
    assert d.stdout_lines() == [], "with --output file:// nothing goes to stdout"


def test_ingest_body_without_final_newline(http_daemon, ev, jsonl, wait_until):
    r = http_daemon.post("/api/v1/events", ev.line(ev.whoami(1)) + ev.line(ev.whoami(2)).rstrip(b"\n"))
    assert r.json() == {"accepted": 2}
    wait_until(lambda: len(jsonl(http_daemon.out)) == 2, "2 results")


def test_metric_values_after_ingest(http_daemon, ev, jsonl, wait_until):
    d = http_daemon
    r = d.post(
        "/api/v1/events",
        ev.ndjson(ev.whoami(1), ev.quiet(2), ev.whoami(3)) + b'{"this is not json\n' + ev.line(ev.whoami(4)),
    )
    assert r.json() == {"accepted": 5}
    d.wait_processed(4)
    d.wait_metric("rsigma_dlq_events_total", 1)
    m = d.metrics()

    def value(name: str, **labels: str) -> float | None:
        return m.get((name, frozenset(labels.items())))

    assert value("rsigma_detection_matches_total") == 3
    assert value("rsigma_detection_matches_by_rule_total", rule_title="Whoami", level="high") == 3
    assert value("rsigma_correlation_matches_total") == 0
    assert value("rsigma_events_parse_errors_total") == 1
    # One observation per evaluation step (its time per event): as many as the steps that evaluated
    # something, which depends on how the backend batched the 4 events (a pool takes them at once).
    assert 1 <= value("rsigma_event_processing_seconds_count") <= 4
    assert value("rsigma_batch_size_count") >= 1
    assert value("rsigma_batch_size_sum") == 5
    assert value("rsigma_back_pressure_events_total") == 0
    assert value("rsigma_input_queue_depth") == 0
    entries = wait_until(lambda: jsonl(d.dlq), "the DLQ entry")
    assert entries[0]["original_event"] == '{"this is not json'

    d.post_events(ev.failed("u", 0), ev.failed("u", 1), ev.failed("u", 2))
    d.wait_processed(7)
    m = d.metrics()
    assert value("rsigma_correlation_matches_total") == 1
    assert (
        value(
            "rsigma_correlation_matches_by_rule_total",
            rule_title="Brute force",
            level="critical",
            correlation_type="event_count",
        )
        == 1
    )
    assert value("rsigma_correlation_state_entries") == 1
    assert value("rsigma_detection_matches_total") == 3


def test_back_pressure_counted_and_nothing_dropped(daemon, rules_dir, ev, tmp_path, jsonl, wait_until):
    out = tmp_path / "out.ndjson"
    d = daemon("-r", rules_dir, "--input", "http", "--output", f"file://{out}", "--buffer-size", "1")
    r = d.post("/api/v1/events", ev.ndjson(*(ev.whoami(i) for i in range(200))))
    assert r.json() == {"accepted": 200}
    results = wait_until(lambda: len(jsonl(out)) >= 200 and jsonl(out), "200 results")
    assert [x["matched_fields"][0]["value"] for x in results] == [f"cmd /c whoami #{i}" for i in range(200)]
    assert d.metric("rsigma_back_pressure_events_total") > 0
    assert d.metric("rsigma_events_processed_total") == 200


def test_events_endpoint_is_404_on_a_stdin_daemon(daemon, rules_dir, ev, wait_until):
    d = daemon("-r", rules_dir)  # stdin is a pipe the test keeps open
    r = d.post("/api/v1/events", ev.ndjson(ev.whoami(1)))
    assert r.status == 404
    assert "error" in r.json()
    assert d.metric("rsigma_events_processed_total") == 0
    d.send(ev.line(ev.whoami(2)))
    wait_until(lambda: d.results(), "the stdin event's detection")
    assert [x["matched_fields"][0]["value"] for x in d.results()] == ["cmd /c whoami #2"]
    assert d.get("/api/v1/status").json()["inputs"] == {"stdin": "open"}
    d.close_stdin()
    assert d.wait_exit() == 0
